import { createRoute, z } from "@hono/zod-openapi";
import { getDelivery, recordAttempt } from "../../../db/webhooks";
import { ApiError } from "../../../domain/errors";
import { nextAttemptDelayMs } from "../../../domain/webhooks";
import { createRouter, errorResponses } from "../../../http";
import { DeliverySchema } from "../../../schemas/webhook";
import { delivered, sendWebhook } from "../../../webhooks/sender";
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
    // A replay never revives the automatic retries of a delivery that gave up or succeeded.
    const status = delivered(result) ? "delivered" : delivery.status;
    const nextAttemptAt =
      status === "pending" ? (delivery.next_attempt_at ?? result.at + (nextAttemptDelayMs(1) ?? 0)) : null;
    await recordAttempt(c.env.DB, delivery.id, result, { status, nextAttemptAt }, true);
    const [view] = await deliveriesJson(c.env.DB, [(await getDelivery(c.env.DB, delivery_id))!]);
    return c.json(view!, 200);
  },
);
