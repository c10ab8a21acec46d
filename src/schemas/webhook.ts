import { z } from "@hono/zod-openapi";
import type { EndpointRow } from "../db/webhooks";
import { isoOrNull } from "./time";

export const EndpointSchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    key_id: z.string().nullable(),
    url: z.string(),
    events: z.enum(["terminal", "all"]),
    status: z.enum(["active", "disabled"]),
    created_at: z.string(),
  })
  .openapi("WebhookEndpoint");

export const EndpointCreate = z
  .strictObject({
    url: z.string().max(2048),
    events: z
      .enum(["terminal", "all"])
      .default("terminal")
      .openapi({ description: "terminal events only, or every change" }),
    key_id: z.string().optional().openapi({ description: "only tasks created with this key" }),
    secret: z
      .string()
      .regex(
        /^whsec_[A-Za-z0-9+/=]{24,}$/,
        "must be a Standard Webhooks secret: whsec_ + base64 of 18+ bytes",
      )
      .optional()
      .openapi({ description: "omit to have one generated" }),
  })
  .openapi("WebhookEndpointCreate");

export type EndpointInput = z.infer<typeof EndpointCreate>;

export const endpointJson = (row: EndpointRow): z.infer<typeof EndpointSchema> => ({
  id: row.id,
  tenant_id: row.tenant_id,
  key_id: row.key_id,
  url: row.url,
  events: row.events,
  status: row.status,
  created_at: isoOrNull(row.created_at)!,
});

const AttemptSchema = z.object({
  attempted_at: z.string(),
  status: z.number().int().nullable(),
  error: z.string().nullable(),
  duration_ms: z.number().int(),
  replay: z.boolean(),
});

export const DeliverySchema = z
  .object({
    id: z.string(),
    endpoint_id: z.string(),
    tenant_id: z.string(),
    task_id: z.string(),
    event_type: z.string(),
    status: z.enum(["pending", "delivered", "failed"]),
    attempts: z.number().int(),
    next_attempt_at: z.string().nullable(),
    last_status: z.number().int().nullable(),
    last_error: z.string().nullable(),
    created_at: z.string(),
    delivered_at: z.string().nullable(),
    attempt_log: z.array(AttemptSchema),
  })
  .openapi("WebhookDelivery");
