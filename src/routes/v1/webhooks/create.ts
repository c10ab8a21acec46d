import { createRoute } from "@hono/zod-openapi";
import { createRouter, errorResponses } from "../../../http";
import { EndpointCreate } from "../../../schemas/webhook";
import { AREAS, body } from "../../helpers";
import { ENDPOINT_RULES, endpointCreated, registerEndpoint } from "../../webhook-endpoints";

export const createWebhookRoute = createRouter().openapi(
  createRoute({
    method: "post",
    path: "/v1/webhooks",
    ...AREAS.webhooks,
    summary: "register a webhook endpoint (sub-key)",
    description: ENDPOINT_RULES,
    request: { body: body(EndpointCreate) },
    responses: { ...endpointCreated, ...errorResponses(400, 401, 403, 409) },
  }),
  async (c) => (await registerEndpoint(c, c.get("principal").tenant.id, c.req.valid("json"))) as never,
);
