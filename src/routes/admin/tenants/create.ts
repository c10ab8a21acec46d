import { createRoute } from "@hono/zod-openapi";
import { createTenant } from "../../../db/tenants";
import { configFrom } from "../../../env";
import { createRouter, errorResponses } from "../../../http";
import { TenantCreate, TenantSchema, tenantJson } from "../../../schemas/tenant";
import { requireHostingConfigured } from "../../../services/assets";
import { AREAS, body, json } from "../../helpers";

export const createTenantRoute = createRouter().openapi(
  createRoute({
    method: "post",
    path: "/admin/tenants",
    ...AREAS.adminTenants,
    summary: "create a tenant",
    request: { body: body(TenantCreate) },
    responses: { 201: json(TenantSchema, "the tenant"), ...errorResponses(400, 401, 500) },
  }),
  async (c) => {
    const input = c.req.valid("json");
    requireHostingConfigured(c.env, configFrom(c.env), input.asset_mode);
    return c.json(tenantJson(await createTenant(c.env.DB, input)), 201);
  },
);
