import type { z } from "@hono/zod-openapi";
import { attemptsOf, type DeliveryRow } from "../../../db/webhooks";
import { isoOrNull } from "../../../schemas/time";
import type { DeliverySchema } from "../../../schemas/webhook";

/** Deliveries with their attempts, read in one query. */
export async function deliveriesJson(
  db: D1Database,
  rows: DeliveryRow[],
): Promise<Array<z.infer<typeof DeliverySchema>>> {
  const attempts = await attemptsOf(
    db,
    rows.map((r) => r.id),
  );
  return rows.map((row) => ({
    id: row.id,
    endpoint_id: row.endpoint_id,
    tenant_id: row.tenant_id,
    task_id: row.task_id,
    event_type: row.event_type,
    status: row.status,
    attempts: row.attempts,
    next_attempt_at: isoOrNull(row.next_attempt_at),
    last_status: row.last_status,
    last_error: row.last_error,
    created_at: isoOrNull(row.created_at)!,
    delivered_at: isoOrNull(row.delivered_at),
    attempt_log: attempts
      .filter((a) => a.delivery_id === row.id)
      .map((a) => ({
        attempted_at: isoOrNull(a.attempted_at)!,
        status: a.status,
        error: a.error,
        duration_ms: a.duration_ms,
        replay: a.replay === 1,
      })),
  }));
}
