import { createRoute } from "@hono/zod-openapi";
import { isRefused } from "../../../db/constraints";
import { updateTenant } from "../../../db/tenants";
import { configFrom } from "../../../env";
import { createRouter, errorResponses } from "../../../http";
import { forgetCachedKeys } from "../../../middleware/auth";
import { TenantPatch, TenantSchema, tenantJson } from "../../../schemas/tenant";
import { requireHostingConfigured } from "../../../services/assets";
import { AREAS, body, inflightAboveNewCap, json, TenantParams, tenantOr404 } from "../../helpers";

export const updateTenantRoute = createRouter().openapi(
  createRoute({
    method: "patch",
    path: "/admin/tenants/{tenant_id}",
    ...AREAS.adminTenants,
    summary: "change a tenant (status, price multiplier, in-flight cap, CORS origins, hosted results)",
    request: { params: TenantParams, body: body(TenantPatch) },
    responses: { 200: json(TenantSchema, "the tenant"), ...errorResponses(400, 401, 404, 500) },
  }),
  async (c) => {
    const { tenant_id } = c.req.valid("param");
    await tenantOr404(c.env.DB, tenant_id);
    const changes = c.req.valid("json");
    requireHostingConfigured(c.env, configFrom(c.env), changes.asset_mode);
    const tenant = await updateTenant(c.env.DB, tenant_id, changes);
    if (isRefused(tenant)) throw inflightAboveNewCap();
    forgetCachedKeys();
    return c.json(tenantJson(tenant!), 200);
  },
);
