import { createRoute } from "@hono/zod-openapi";
import { deleteEndpoint } from "../../../db/webhooks";
import { createRouter, errorResponses } from "../../../http";
import { AREAS, WebhookParams } from "../../helpers";
import { webhookNotFound } from "../../webhook-endpoints";

export const disableWebhookRoute = createRouter().openapi(
  createRoute({
    method: "delete",
    path: "/v1/webhooks/{webhook_id}",
    ...AREAS.webhooks,
    summary: "disable one of your webhook endpoints",
    request: { params: WebhookParams },
    responses: { 204: { description: "disabled" }, ...errorResponses(401, 403, 404) },
  }),
  async (c) => {
    const { webhook_id } = c.req.valid("param");
    if (!(await deleteEndpoint(c.env.DB, c.get("principal").tenant.id, webhook_id))) {
      throw webhookNotFound(webhook_id);
    }
    return c.body(null, 204);
  },
);
