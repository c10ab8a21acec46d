import { createRoute, z } from "@hono/zod-openapi";
import { getDelivery, recordAttempt } from "../../../db/webhooks";
import { ApiError } from "../../../domain/errors";
import { createRouter, errorResponses } from "../../../http";
import { DeliverySchema } from "../../../schemas/webhook";
import { afterReplay, sendWebhook } from "../../../webhooks/sender";
import { AREAS, json } from "../../helpers";
import { deliveriesJson } from "./deliveries-json";

export const replayDeliveryRoute = createRouter().openapi(
  createRoute({
    method: "post",
    path: "/admin/webhook-deliveries/{delivery_id}/replay",
    ...AREAS.adminWebhooks,
    summary: "send a delivery again now (same webhook-id, new timestamp and signature)",
    request: {
      params: z.object({ delivery_id: z.string().openapi({ param: { name: "delivery_id", in: "path" } }) }),
    },
    responses: { 200: json(DeliverySchema, "the delivery after the attempt"), ...errorResponses(401, 404) },
  }),
  async (c) => {
    const { delivery_id } = c.req.valid("param");
    const delivery = await getDelivery(c.env.DB, delivery_id);
    if (!delivery)
      throw new ApiError("not_found", `delivery ${delivery_id} not found`, { field: "delivery_id" });
    const result = await sendWebhook(delivery, { id: delivery.id, payload: delivery.payload });
    await recordAttempt(c.env.DB, delivery.id, result, afterReplay(result, delivery), true);
    const [view] = await deliveriesJson(c.env.DB, [(await getDelivery(c.env.DB, delivery_id))!]);
    return c.json(view!, 200);
  },
);
