import { createRoute, z } from "@hono/zod-openapi";
import { listTenants } from "../../../db/tenants";
import { createRouter, errorResponses } from "../../../http";
import { TenantSchema, tenantJson } from "../../../schemas/tenant";
import { AREAS, json, pageOf } from "../../helpers";

export const listTenantsRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/admin/tenants",
    ...AREAS.adminTenants,
    summary: "list tenants",
    request: {
      query: z.object({
        limit: z.coerce.number().int().min(1).max(500).default(100),
        cursor: z.string().optional(),
      }),
    },
    responses: {
      200: json(z.object({ data: z.array(TenantSchema), next_cursor: z.string().nullable() }), "tenants"),
      ...errorResponses(401),
    },
  }),
  async (c) => {
    const { limit, cursor } = c.req.valid("query");
    const { page, nextCursor } = pageOf(await listTenants(c.env.DB, limit + 1, cursor), limit);
    return c.json({ data: page.map(tenantJson), next_cursor: nextCursor }, 200);
  },
);
