import { createRoute } from "@hono/zod-openapi";
import { listEndpoints } from "../../../db/webhooks";
import { createRouter, errorResponses } from "../../../http";
import { endpointJson } from "../../../schemas/webhook";
import { AREAS } from "../../helpers";
import { endpointsListed } from "../../webhook-endpoints";

export const listWebhooksRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/v1/webhooks",
    ...AREAS.webhooks,
    summary: "your webhook endpoints",
    responses: { ...endpointsListed, ...errorResponses(401, 403) },
  }),
  async (c) =>
    c.json({ data: (await listEndpoints(c.env.DB, c.get("principal").tenant.id)).map(endpointJson) }, 200),
);
