import { z } from "@hono/zod-openapi";
import type { UpstreamRow } from "../db/upstreams";
import { ACTIONS } from "../domain/actions";
import type { GateReport } from "../durable/upstream-gate";
import { isoOrNull } from "./time";

/** A pool member as the operator API shows it: never its key, only the key's last four characters. */
export const UpstreamSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    base_url: z.string(),
    key_hint: z.string().openapi({ description: "the last four characters of the API key" }),
    /** Where its URL and key come from: the environment (the `default` member) or this API. */
    source: z.enum(["environment", "api"]),
    weight: z.number().int(),
    priority: z.number().int(),
    max_inflight: z.number().int(),
    actions: z
      .array(z.enum(ACTIONS))
      .nullable()
      .openapi({ description: "the actions it serves; null serves every action" }),
    enabled: z.boolean(),
    created_at: z.string(),
    updated_at: z.string(),
    disabled_at: z.string().nullable(),
    upstream_cost_today_micros: z.number().int().openapi({
      description:
        "what this member reported it billed for our tasks that succeeded today (UTC): the upstream cost of GET /admin/margin?group_by=upstream",
    }),
    live: z
      .object({
        inflight: z.number().int(),
        queued: z.number().int(),
        circuit: z.enum(["closed", "open", "half_open"]),
        admitting: z.boolean(),
        window_samples: z.number().int(),
        window_errors: z.number().int(),
        last_error: z.string().nullable(),
        submits_in_window: z.number().int().openapi({ description: "submits in the health window (60 s)" }),
        submit_failures_in_window: z
          .number()
          .int()
          .openapi({ description: "of those, the ones the member failed (5xx, timeout, refused key)" }),
        p50_submit_ms: z.number().int().nullable().openapi({
          description: "median submit round trip of its last 100 submits; null before the first",
        }),
      })
      .openapi({
        description:
          "its gate now: our tasks open on it, tasks waiting for a slot, its health circuit and recent submits",
      }),
  })
  .openapi("Upstream");

const name = z.string().trim().min(1).max(200);
const baseUrl = z
  .string()
  .max(2000)
  .openapi({ description: "https (loopback http in development only); no query or fragment" });
const apiKey = z.string().trim().min(8).max(1000);
/** Settings of every member, the default one included; omitted ones take the column defaults. */
const settings = {
  weight: z
    .number()
    .int()
    .min(1)
    .max(1000)
    .optional()
    .openapi({ description: "share within its priority (default 100)" }),
  priority: z
    .number()
    .int()
    .min(-1000)
    .max(1000)
    .optional()
    .openapi({ description: "lower is tried first (default 0)" }),
  max_inflight: z.number().int().min(1).max(100_000).optional().openapi({ description: "default 100" }),
  actions: z.array(z.enum(ACTIONS)).min(1).nullable().optional(),
  enabled: z.boolean().optional(),
};

export const UpstreamCreate = z
  .strictObject({ name, base_url: baseUrl, api_key: apiKey, ...settings })
  .openapi("UpstreamCreate");

export const UpstreamPatch = z
  .strictObject({
    name: name.optional(),
    base_url: baseUrl.optional(),
    api_key: apiKey.optional(),
    ...settings,
  })
  .openapi("UpstreamPatch");

export type UpstreamInput = z.infer<typeof UpstreamCreate>;
export type UpstreamChanges = z.infer<typeof UpstreamPatch>;

/** The fields a row cannot show for the default member: read from the environment instead. */
export interface UpstreamOrigin {
  base_url: string;
  key_hint: string;
  source: "environment" | "api";
}

export function upstreamJson(
  row: UpstreamRow,
  origin: UpstreamOrigin,
  gate: GateReport,
  costTodayMicros: number,
): z.infer<typeof UpstreamSchema> {
  return {
    id: row.id,
    name: row.name,
    ...origin,
    weight: row.weight,
    priority: row.priority,
    max_inflight: row.max_inflight,
    actions: row.actions === null ? null : JSON.parse(row.actions),
    enabled: row.enabled === 1,
    created_at: isoOrNull(row.created_at)!,
    updated_at: isoOrNull(row.updated_at)!,
    disabled_at: isoOrNull(row.disabled_at),
    upstream_cost_today_micros: costTodayMicros,
    live: {
      inflight: gate.inflight,
      queued: gate.queued,
      circuit: gate.circuit,
      admitting: gate.admitting,
      window_samples: gate.window.samples,
      window_errors: gate.window.errors,
      last_error: gate.lastError,
      submits_in_window: gate.submits.inWindow,
      submit_failures_in_window: gate.submits.failedInWindow,
      p50_submit_ms: gate.submits.p50Ms,
    },
  };
}
