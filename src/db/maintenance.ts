import { RATE_WINDOW_MS } from "./admission";
import { IDEMPOTENCY_RETENTION_MS } from "./idempotency";
import { purgeWebhookHistory } from "./webhooks";

/** Rows per purge statement: each is one short, index-backed delete, never a sweep of a table. */
export const PURGE_BATCH_ROWS = 5_000;
/** Purge rounds per table and run: at most this many × PURGE_BATCH_ROWS rows go per run. */
const MAX_PURGE_ROUNDS = 10;

/** Each purged table and the indexed time column its rows age by. */
const AGED_BY = { rate_windows: "window_start", idempotency: "created_at" } as const;

/** The oldest rows (at most `batch`) older than `before`; returns how many went. */
async function purgeOlderThan(db: D1Database, table: keyof typeof AGED_BY, before: number, batch: number) {
  const column = AGED_BY[table];
  const result = await db
    .prepare(
      `DELETE FROM ${table} WHERE rowid IN
         (SELECT rowid FROM ${table} WHERE ${column} < ?1 ORDER BY ${column} LIMIT ?2)`,
    )
    .bind(before, batch)
    .run();
  return result.meta.changes;
}

/** Rate windows that started before `before` (oldest first, at most `batch`); returns how many went. */
export const purgeRateWindows = (db: D1Database, before: number, batch = PURGE_BATCH_ROWS) =>
  purgeOlderThan(db, "rate_windows", before, batch);

/** Idempotency keys created before `before` (oldest first, at most `batch`); returns how many went. */
export const purgeIdempotencyKeys = (db: D1Database, before: number, batch = PURGE_BATCH_ROWS) =>
  purgeOlderThan(db, "idempotency", before, batch);

async function inRounds(purge: () => Promise<number>, batch: number) {
  for (let round = 0; round < MAX_PURGE_ROUNDS; round++) {
    if ((await purge()) < batch) break;
  }
}

/**
 * Cron housekeeping, in bounded rounds: rate windows ten windows after they ended, idempotency
 * keys after their 24 h, and settled webhook deliveries with their attempts after
 * `webhookRetentionMs`. A backlog larger than a run's rounds is finished by the next runs.
 */
export async function runMaintenance(
  db: D1Database,
  now: number,
  options: { webhookRetentionMs: number; batch?: number } = { webhookRetentionMs: 30 * 86_400_000 },
): Promise<void> {
  const batch = options.batch ?? PURGE_BATCH_ROWS;
  await inRounds(() => purgeRateWindows(db, now - 10 * RATE_WINDOW_MS, batch), batch);
  await inRounds(() => purgeIdempotencyKeys(db, now - IDEMPOTENCY_RETENTION_MS, batch), batch);
  const before = now - options.webhookRetentionMs;
  await inRounds(() => purgeWebhookHistory(db, before, batch), batch);
}
