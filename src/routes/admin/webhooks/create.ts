import { createRoute } from "@hono/zod-openapi";
import { createRouter, errorResponses } from "../../../http";
import { EndpointCreate } from "../../../schemas/webhook";
import { AREAS, body, TenantParams, tenantOr404 } from "../../helpers";
import { ENDPOINT_RULES, endpointCreated, registerEndpoint } from "../../webhook-endpoints";

export const createTenantWebhookRoute = createRouter().openapi(
  createRoute({
    method: "post",
    path: "/admin/tenants/{tenant_id}/webhooks",
    ...AREAS.adminWebhooks,
    summary: "register a webhook endpoint for a tenant",
    description: ENDPOINT_RULES,
    request: { params: TenantParams, body: body(EndpointCreate) },
    responses: { ...endpointCreated, ...errorResponses(400, 401, 404, 409) },
  }),
  async (c) => {
    const { tenant_id } = c.req.valid("param");
    await tenantOr404(c.env.DB, tenant_id);
    return (await registerEndpoint(c, tenant_id, c.req.valid("json"))) as never;
  },
);
