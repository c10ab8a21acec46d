import { RATE_WINDOW_MS } from "./admission";
import { IDEMPOTENCY_RETENTION_MS } from "./idempotency";

/** Hourly housekeeping: old rate windows and idempotency keys (after their 24 h) go away. */
export async function runMaintenance(db: D1Database, now: number): Promise<void> {
  await db.batch([
    db.prepare("DELETE FROM rate_windows WHERE window_start < ?1").bind(now - 10 * RATE_WINDOW_MS),
    db.prepare("DELETE FROM idempotency WHERE created_at < ?1").bind(now - IDEMPOTENCY_RETENTION_MS),
  ]);
}
