import { ApiError } from "../domain/errors";
import { dayPeriod, monthPeriod } from "../domain/periods";
import { insertCharge, insertRefundOfCharge } from "./ledger-writes";

export const RATE_WINDOW_MS = 60_000;

export interface AdmissionRequest {
  tenantId: string;
  keyId: string;
  taskId: string;
  action: string;
  parentTaskId: string | null;
  costMicros: number;
  rpmLimit: number;
  dailyCap: number | null;
  monthlyCap: number | null;
  /** New tasks take an in-flight slot; a /modal continues a task that already holds one. */
  kind: "new_task" | "modal";
  idempotency: { key: string; requestHash: string } | null;
  at: number;
}

export interface Admitted {
  rateLimit: { limit: number; remaining: number; resetSeconds: number };
}

/** Maps a named CHECK constraint in a failed batch to the client-facing refusal. */
export function refusalFor(
  error: unknown,
  request: AdmissionRequest,
): ApiError | "idempotency_conflict" | null {
  const message = error instanceof Error ? error.message : String(error);
  const failed = /CHECK constraint failed: (\w+)/.exec(message)?.[1];
  const resetSeconds = Math.max(1, Math.ceil((windowStart(request.at) + RATE_WINDOW_MS - request.at) / 1000));
  switch (failed) {
    case "balance_nonnegative":
      return new ApiError(402, "insufficient_balance", "the tenant's balance does not cover this action");
    case "rate_limit":
      return new ApiError(429, "rate_limited", `this key allows ${request.rpmLimit} requests per minute`, {
        headers: {
          "Retry-After": String(resetSeconds),
          "RateLimit-Limit": String(request.rpmLimit),
          "RateLimit-Remaining": "0",
          "RateLimit-Reset": String(resetSeconds),
        },
      });
    case "key_inflight_cap":
      return new ApiError(429, "too_many_tasks", "this key has too many tasks in flight", {
        headers: { "Retry-After": "5" },
      });
    case "tenant_inflight_cap":
      return new ApiError(429, "too_many_tasks", "this tenant has too many tasks in flight", {
        headers: { "Retry-After": "5" },
      });
    case "key_budget":
      return new ApiError(
        402,
        "key_budget_exceeded",
        "this key's daily or monthly spend cap would be exceeded",
      );
  }
  if (/UNIQUE constraint failed: idempotency/.test(message)) return "idempotency_conflict";
  if (/task_already_settled/.test(message)) {
    return new ApiError(409, "modal_not_available", "the task has already ended; start a new inpaint", {
      field: "task_id",
    });
  }
  if (/UNIQUE constraint failed: ledger/.test(message)) {
    return new ApiError(409, "modal_not_available", "this task has already been charged");
  }
  return null;
}

export function windowStart(at: number): number {
  return at - (at % RATE_WINDOW_MS);
}

/**
 * Admission in ONE D1 batch (one transaction): rate window, in-flight slots, balance,
 * key spend, the charge row, the task row and the idempotency row. Any named CHECK that
 * fails rolls all of it back, so a refused request writes nothing.
 */
export async function admit(db: D1Database, request: AdmissionRequest): Promise<Admitted> {
  const { tenantId, keyId, taskId, costMicros, at } = request;
  const slot = request.kind === "new_task" ? 1 : 0;
  const start = windowStart(at);
  const statements: D1PreparedStatement[] = [
    db
      .prepare(
        `INSERT INTO rate_windows (key_id, window_start, count, lim) VALUES (?1, ?2, 1, ?3)
         ON CONFLICT (key_id, window_start) DO UPDATE SET count = count + 1, lim = excluded.lim
         RETURNING count`,
      )
      .bind(keyId, start, request.rpmLimit),
    db.prepare("UPDATE api_keys SET inflight = inflight + ?2 WHERE id = ?1").bind(keyId, slot),
    db
      .prepare("UPDATE tenants SET balance = balance - ?2, inflight = inflight + ?3 WHERE id = ?1")
      .bind(tenantId, costMicros, slot),
    spendStatement(db, keyId, dayPeriod(at), costMicros, request.dailyCap),
    spendStatement(db, keyId, monthPeriod(at), costMicros, request.monthlyCap),
  ];
  if (costMicros > 0) {
    statements.push(
      insertCharge(db, {
        tenantId,
        keyId,
        taskId,
        action: request.action,
        amountMicros: costMicros,
        reason: request.kind === "modal" ? "modal" : "submit",
        at,
      }),
    );
  }
  if (request.kind === "new_task") {
    statements.push(
      db
        .prepare(
          `INSERT INTO tasks (id, tenant_id, key_id, action, parent_task_id, status, cost, created_at)
           VALUES (?1, ?2, ?3, ?4, ?5, 'NOT_START', ?6, ?7)`,
        )
        .bind(taskId, tenantId, keyId, request.action, request.parentTaskId, costMicros, at),
    );
  } else {
    // A trigger refuses this once the task is settled (migrations/0004), so a /modal that
    // races a cancellation rolls back and charges nothing.
    statements.push(db.prepare("UPDATE tasks SET cost = cost + ?2 WHERE id = ?1").bind(taskId, costMicros));
  }
  if (request.idempotency) {
    statements.push(
      db
        .prepare(
          `INSERT INTO idempotency (tenant_id, idem_key, request_hash, task_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)`,
        )
        .bind(tenantId, request.idempotency.key, request.idempotency.requestHash, taskId, at),
    );
  }
  try {
    const results = await db.batch<{ count: number }>(statements);
    const count = results[0]?.results[0]?.count ?? 1;
    return {
      rateLimit: {
        limit: request.rpmLimit,
        remaining: Math.max(0, request.rpmLimit - count),
        resetSeconds: Math.max(1, Math.ceil((start + RATE_WINDOW_MS - at) / 1000)),
      },
    };
  } catch (error) {
    const refusal = refusalFor(error, request);
    if (refusal) throw refusal;
    throw error;
  }
}

function spendStatement(db: D1Database, keyId: string, period: string, micros: number, cap: number | null) {
  return db
    .prepare(
      `INSERT INTO key_spend (key_id, period, spent, cap) VALUES (?1, ?2, ?3, ?4)
       ON CONFLICT (key_id, period) DO UPDATE SET spent = spent + excluded.spent, cap = excluded.cap`,
    )
    .bind(keyId, period, micros, cap);
}

export interface SettleRequest {
  taskId: string;
  status: "SUCCESS" | "FAILURE" | "CANCEL";
  refund: boolean;
  reason: string | null;
  failReason: string | null;
  upstreamTaskId: string | null;
  at: number;
}

/**
 * Settles a task exactly once, in one batch: frees its in-flight slots and, when the
 * state machine says so, refunds its charge (and gives the spend back to the key's caps).
 * Every statement is guarded by `settled_at IS NULL`, so a repeated call changes nothing.
 * Returns true if this call settled the task.
 */
export async function settleTask(db: D1Database, request: SettleRequest): Promise<boolean> {
  const { taskId, at } = request;
  const unsettled = "(SELECT 1 FROM tasks WHERE id = ?1 AND settled_at IS NULL)";
  const refundMicros = request.refund
    ? "COALESCE((SELECT -amount FROM ledger WHERE task_id = ?1 AND kind = 'charge'), 0)"
    : "0";
  const statements = [
    db
      .prepare(
        `UPDATE api_keys SET inflight = inflight - 1
         WHERE id = (SELECT key_id FROM tasks WHERE id = ?1) AND EXISTS ${unsettled}`,
      )
      .bind(taskId),
    db
      .prepare(
        `UPDATE tenants SET inflight = inflight - 1, balance = balance + ${refundMicros}
         WHERE id = (SELECT tenant_id FROM tasks WHERE id = ?1) AND EXISTS ${unsettled}`,
      )
      .bind(taskId),
  ];
  if (request.refund) {
    statements.push(
      db
        .prepare(
          `UPDATE key_spend SET spent = spent - c.amount_abs
           FROM (SELECT key_id, -amount AS amount_abs, created_at FROM ledger WHERE task_id = ?1 AND kind = 'charge') AS c
           WHERE key_spend.key_id = c.key_id
             AND key_spend.period IN ('d' || strftime('%Y-%m-%d', c.created_at / 1000, 'unixepoch'),
                                      'm' || strftime('%Y-%m', c.created_at / 1000, 'unixepoch'))
             AND EXISTS ${unsettled}`,
        )
        .bind(taskId),
      insertRefundOfCharge(db, taskId, request.reason ?? "refund", at),
    );
  }
  statements.push(
    db
      .prepare(
        `UPDATE tasks SET status = ?2, settled_at = ?3, finished_at = ?3, fail_reason = ?4,
           upstream_task_id = COALESCE(?5, upstream_task_id)
         WHERE id = ?1 AND settled_at IS NULL`,
      )
      .bind(taskId, request.status, at, request.failReason, request.upstreamTaskId),
  );
  const results = await db.batch(statements);
  return (results.at(-1)?.meta.changes ?? 0) === 1;
}

export async function recordLateUpstreamStatus(
  db: D1Database,
  taskId: string,
  status: string,
): Promise<void> {
  await db.prepare("UPDATE tasks SET late_upstream_status = ?2 WHERE id = ?1").bind(taskId, status).run();
}
