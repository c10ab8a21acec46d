import { createRoute } from "@hono/zod-openapi";
import { deleteEndpoint } from "../../../db/webhooks";
import { createRouter, errorResponses } from "../../../http";
import { AREAS, TenantParams, WebhookParams } from "../../helpers";
import { webhookNotFound } from "../../webhook-endpoints";

export const disableTenantWebhookRoute = createRouter().openapi(
  createRoute({
    method: "delete",
    path: "/admin/tenants/{tenant_id}/webhooks/{webhook_id}",
    ...AREAS.adminWebhooks,
    summary: "disable a webhook endpoint",
    request: { params: TenantParams.extend(WebhookParams.shape) },
    responses: { 204: { description: "disabled" }, ...errorResponses(401, 404) },
  }),
  async (c) => {
    const { tenant_id, webhook_id } = c.req.valid("param");
    if (!(await deleteEndpoint(c.env.DB, tenant_id, webhook_id))) throw webhookNotFound(webhook_id);
    return c.body(null, 204);
  },
);
