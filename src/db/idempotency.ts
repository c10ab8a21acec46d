export interface IdempotencyRecord {
  request_hash: string;
  task_id: string;
  created_at: number;
}

/** Keys are kept at least 24 h; the scheduled cleanup removes older ones. */
export const IDEMPOTENCY_RETENTION_MS = 24 * 3_600_000;

export async function findIdempotencyRecord(
  db: D1Database,
  tenantId: string,
  key: string,
): Promise<IdempotencyRecord | null> {
  return db
    .prepare(
      "SELECT request_hash, task_id, created_at FROM idempotency WHERE tenant_id = ?1 AND idem_key = ?2",
    )
    .bind(tenantId, key)
    .first<IdempotencyRecord>();
}

/** A submit that failed upstream releases its key, so the client's retry makes a new attempt. */
export async function forgetIdempotencyKey(db: D1Database, tenantId: string, key: string): Promise<void> {
  await db
    .prepare("DELETE FROM idempotency WHERE tenant_id = ?1 AND idem_key = ?2")
    .bind(tenantId, key)
    .run();
}
