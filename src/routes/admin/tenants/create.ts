import { createRoute } from "@hono/zod-openapi";
import { createTenant } from "../../../db/tenants";
import { createRouter, errorResponses } from "../../../http";
import { TenantCreate, TenantSchema, tenantJson } from "../../../schemas/tenant";
import { AREAS, body, json } from "../../helpers";

export const createTenantRoute = createRouter().openapi(
  createRoute({
    method: "post",
    path: "/admin/tenants",
    ...AREAS.adminTenants,
    summary: "create a tenant",
    request: { body: body(TenantCreate) },
    responses: { 201: json(TenantSchema, "the tenant"), ...errorResponses(400, 401) },
  }),
  async (c) => c.json(tenantJson(await createTenant(c.env.DB, c.req.valid("json"))), 201),
);
