import { RATE_WINDOW_MS } from "./admission";
import { IDEMPOTENCY_RETENTION_MS } from "./idempotency";
import { purgeWebhookHistory } from "./webhooks";

/** Purge rounds per run: at most this many × 5,000 webhook deliveries go per hour. */
const MAX_PURGE_ROUNDS = 10;

/**
 * Hourly housekeeping: old rate windows and idempotency keys (after their 24 h) go away,
 * and settled webhook deliveries with their attempts after `webhookRetentionMs`.
 */
export async function runMaintenance(
  db: D1Database,
  now: number,
  options: { webhookRetentionMs: number } = { webhookRetentionMs: 30 * 86_400_000 },
): Promise<void> {
  await db.batch([
    db.prepare("DELETE FROM rate_windows WHERE window_start < ?1").bind(now - 10 * RATE_WINDOW_MS),
    db.prepare("DELETE FROM idempotency WHERE created_at < ?1").bind(now - IDEMPOTENCY_RETENTION_MS),
  ]);
  const before = now - options.webhookRetentionMs;
  for (let round = 0; round < MAX_PURGE_ROUNDS; round++) {
    if ((await purgeWebhookHistory(db, before)) < 5_000) break;
  }
}
