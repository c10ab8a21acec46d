/**
 * The only module that writes the ledger. Every statement reads the balance it records
 * from the tenants row inside the same D1 batch, so `balance_after` is exact even under
 * concurrency; callers put these statements in the batch right after the balance update.
 */

export interface ChargeRow {
  tenantId: string;
  keyId: string;
  taskId: string;
  action: string;
  amountMicros: number;
  /** The task's step this charge pays for: 'submit', 'modal.1', … One charge per step. */
  step: string;
  reason: string;
  at: number;
}

export function insertCharge(db: D1Database, row: ChargeRow): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO ledger (tenant_id, key_id, task_id, kind, action, amount, balance_after, reason, step, created_at)
       SELECT ?1, ?2, ?3, 'charge', ?4, -?5, balance, ?6, ?7, ?8 FROM tenants WHERE id = ?1`,
    )
    .bind(row.tenantId, row.keyId, row.taskId, row.action, row.amountMicros, row.reason, row.step, row.at);
}

/**
 * The charge of one step of an open task while it has no refund yet: the guard every refund
 * statement of that step repeats, so a refund batch run twice (or concurrently, or after the
 * task settled) changes nothing. The partial UNIQUE index on `ref_id` is the last line of
 * defence. ?1 is the task id, ?2 the step.
 */
export const UNREFUNDED_CHARGE = `SELECT c.id, c.tenant_id, c.key_id, c.task_id, c.action, -c.amount AS micros, c.created_at
  FROM ledger c WHERE c.task_id = ?1 AND c.step = ?2 AND c.kind = 'charge'
    AND NOT EXISTS (SELECT 1 FROM ledger r WHERE r.ref_id = c.id AND r.kind = 'refund')
    AND EXISTS (SELECT 1 FROM tasks k WHERE k.id = ?1 AND k.settled_at IS NULL)`;

/** The refund row of a step's charge; a no-op when the step has no charge or is refunded already. */
export function insertRefundOfStep(
  db: D1Database,
  taskId: string,
  step: string,
  reason: string,
  at: number,
): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO ledger (tenant_id, key_id, task_id, kind, action, amount, balance_after, reason, ref_id, step, created_at)
       SELECT c.tenant_id, c.key_id, c.task_id, 'refund', c.action, c.micros, t.balance, ?3, c.id, ?2, ?4
       FROM (${UNREFUNDED_CHARGE}) c JOIN tenants t ON t.id = c.tenant_id`,
    )
    .bind(taskId, step, reason, at);
}

export interface CreditRow {
  tenantId: string;
  kind: "topup" | "adjustment";
  amountMicros: number;
  reason: string;
  at: number;
}

export function insertCredit(db: D1Database, row: CreditRow): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO ledger (tenant_id, kind, amount, balance_after, reason, created_at)
       SELECT id, ?2, ?3, balance, ?4, ?5 FROM tenants WHERE id = ?1`,
    )
    .bind(row.tenantId, row.kind, row.amountMicros, row.reason, row.at);
}

/**
 * The only delete of ledger rows: the archive commit's (src/db/archive.ts), by id. The
 * migration-0013 triggers refuse it outside an open archive object of the row's tenant and
 * move every deleted amount into the tenant's checkpoint, so no balance changes. `idsJson` is
 * a JSON array of ledger ids.
 */
export function deleteArchivedLedgerRows(db: D1Database, idsJson: string): D1PreparedStatement {
  return db.prepare("DELETE FROM ledger WHERE id IN (SELECT value FROM json_each(?1))").bind(idsJson);
}

export interface StorageChargeRow {
  tenantId: string;
  /** The UTC day (YYYY-MM-DD) the stored bytes are charged for. */
  day: string;
  amountMicros: number;
  reason: string;
  at: number;
}

/** A day of hosted-file storage (kind `storage`); callers debit the balance in the same batch. */
export function insertStorageCharge(db: D1Database, row: StorageChargeRow): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO ledger (tenant_id, kind, action, amount, balance_after, reason, step, created_at)
       SELECT id, 'storage', 'storage', -?2, balance, ?3, ?4, ?5 FROM tenants WHERE id = ?1`,
    )
    .bind(row.tenantId, row.amountMicros, row.reason, row.day, row.at);
}
