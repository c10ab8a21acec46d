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
  reason: string;
  at: number;
}

export function insertCharge(db: D1Database, row: ChargeRow): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO ledger (tenant_id, key_id, task_id, kind, action, amount, balance_after, reason, created_at)
       SELECT ?1, ?2, ?3, 'charge', ?4, -?5, balance, ?6, ?7 FROM tenants WHERE id = ?1`,
    )
    .bind(row.tenantId, row.keyId, row.taskId, row.action, row.amountMicros, row.reason, row.at);
}

/**
 * Refunds the task's charge, if it has one and the task is not settled yet. The partial
 * UNIQUE index on (task_id, kind) is the last line of defence against a second refund.
 */
export function insertRefundOfCharge(
  db: D1Database,
  taskId: string,
  reason: string,
  at: number,
): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO ledger (tenant_id, key_id, task_id, kind, action, amount, balance_after, reason, ref_id, created_at)
       SELECT c.tenant_id, c.key_id, c.task_id, 'refund', c.action, -c.amount, t.balance, ?2, c.id, ?3
       FROM ledger c JOIN tenants t ON t.id = c.tenant_id JOIN tasks k ON k.id = c.task_id
       WHERE c.task_id = ?1 AND c.kind = 'charge' AND k.settled_at IS NULL`,
    )
    .bind(taskId, reason, at);
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
