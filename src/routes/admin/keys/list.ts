import { createRoute, z } from "@hono/zod-openapi";
import { listKeys } from "../../../db/tenants";
import { createRouter, errorResponses } from "../../../http";
import { KeySchema, keyJson } from "../../../schemas/key";
import { AREAS, json, TenantParams, tenantOr404 } from "../../helpers";

export const listKeysRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/admin/tenants/{tenant_id}/keys",
    ...AREAS.adminTenants,
    summary: "list a tenant's keys (never their secrets)",
    request: { params: TenantParams },
    responses: { 200: json(z.object({ data: z.array(KeySchema) }), "keys"), ...errorResponses(401, 404) },
  }),
  async (c) => {
    const { tenant_id } = c.req.valid("param");
    await tenantOr404(c.env.DB, tenant_id);
    return c.json({ data: (await listKeys(c.env.DB, tenant_id)).map(keyJson) }, 200);
  },
);
