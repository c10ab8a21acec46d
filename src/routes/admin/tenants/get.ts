import { createRoute } from "@hono/zod-openapi";
import { createRouter, errorResponses } from "../../../http";
import { TenantSchema, tenantJson } from "../../../schemas/tenant";
import { AREAS, json, TenantParams, tenantOr404 } from "../../helpers";

export const getTenantRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/admin/tenants/{tenant_id}",
    ...AREAS.adminTenants,
    summary: "one tenant",
    request: { params: TenantParams },
    responses: { 200: json(TenantSchema, "the tenant"), ...errorResponses(401, 404) },
  }),
  async (c) => c.json(tenantJson(await tenantOr404(c.env.DB, c.req.valid("param").tenant_id)), 200),
);
