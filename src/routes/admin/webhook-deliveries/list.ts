import { createRoute, z } from "@hono/zod-openapi";
import { listDeliveries } from "../../../db/webhooks";
import { createRouter, errorResponses } from "../../../http";
import { DeliverySchema } from "../../../schemas/webhook";
import { AREAS, json, pageOf } from "../../helpers";
import { deliveriesJson } from "./deliveries-json";

export const listDeliveriesRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/admin/webhook-deliveries",
    ...AREAS.adminWebhooks,
    summary: "webhook deliveries with every attempt, newest first",
    request: {
      query: z.object({
        tenant_id: z.string().optional(),
        task_id: z.string().optional(),
        status: z.enum(["pending", "delivered", "failed"]).optional(),
        limit: z.coerce.number().int().min(1).max(200).default(50),
        cursor: z.string().optional(),
      }),
    },
    responses: {
      200: json(
        z.object({ data: z.array(DeliverySchema), next_cursor: z.string().nullable() }),
        "deliveries",
      ),
      ...errorResponses(400, 401),
    },
  }),
  async (c) => {
    const query = c.req.valid("query");
    const rows = await listDeliveries(
      c.env.DB,
      { tenantId: query.tenant_id, taskId: query.task_id, status: query.status },
      query.limit + 1,
      query.cursor,
    );
    const { page, nextCursor } = pageOf(rows, query.limit);
    return c.json({ data: await deliveriesJson(c.env.DB, page), next_cursor: nextCursor }, 200);
  },
);
