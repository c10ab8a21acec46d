import { dayPeriod, monthPeriod } from "../domain/periods";
import { type DbRefusal, refusalOf } from "./constraints";
import { insertCharge, insertRefundOfStep, UNREFUNDED_CHARGE } from "./ledger-writes";
import { hasEndpointsIn, hasEndpointsStatement } from "./webhooks";

export const RATE_WINDOW_MS = 60_000;

/** One task an admission creates (or, for a /modal, the task it charges again). */
export interface AdmittedTask {
  taskId: string;
  costMicros: number;
}

export interface AdmissionRequest {
  tenantId: string;
  keyId: string;
  /** The lead task (the one whose TaskObject forwards the request). */
  taskId: string;
  action: string;
  parentTaskId: string | null;
  /** The lead task's price. */
  costMicros: number;
  /** Further jobs of the same request (`repeat`): each its own task, charge and slot. */
  siblings?: AdmittedTask[];
  /** New tasks take an in-flight slot each; a /modal continues a task that already holds one. */
  kind: "new_task" | "modal";
  /** The step this charge pays for: 'submit' for new tasks, 'modal.N' for the N-th /modal. */
  step?: string;
  idempotency: { key: string; requestHash: string } | null;
  at: number;
  /** Only to word a refusal (the limit itself is read from D1 inside the batch). */
  rpmLimitHint?: number;
}

export interface RateLimitState {
  limit: number;
  remaining: number;
  resetSeconds: number;
}

/**
 * What the admission batch answers: admitted with the key's rate-limit state and whether the
 * tenant has webhook endpoints for this key (read in the same batch, so a task of a tenant
 * without endpoints never asks D1 about webhooks), or refused by a named constraint (the
 * refusal, never an HTTP error: services decide what a client sees).
 */
export type AdmissionResult =
  | { ok: true; rateLimit: RateLimitState; webhooks: boolean }
  | { ok: false; refusal: DbRefusal };

const KEY_STATE = `CASE WHEN t.status != 'active' THEN 'tenant_suspended'
  WHEN k.status != 'active' THEN k.status
  WHEN k.expires_at IS NOT NULL AND k.expires_at <= ?3 THEN 'expired'
  ELSE 'active' END`;

export function windowStart(at: number): number {
  return at - (at % RATE_WINDOW_MS);
}

/**
 * Admission in ONE D1 batch (one transaction): the key's and tenant's status and the rate
 * window (both read from D1 here, never from a cache), in-flight slots, balance, key spend
 * (caps read from D1), a charge row and a task row per job, and the idempotency row. Any
 * named CHECK that fails rolls all of it back, so a refused request writes nothing, and the
 * constraint's name comes back as the refusal. Errors that are no refusal are thrown.
 */
export async function admit(db: D1Database, request: AdmissionRequest): Promise<AdmissionResult> {
  const { tenantId, keyId, at } = request;
  const jobs: AdmittedTask[] = [
    { taskId: request.taskId, costMicros: request.costMicros },
    ...(request.siblings ?? []),
  ];
  const totalMicros = jobs.reduce((sum, job) => sum + job.costMicros, 0);
  const slots = request.kind === "new_task" ? jobs.length : 0;
  const step = request.step ?? "submit";
  const start = windowStart(at);
  const statements: D1PreparedStatement[] = [
    db
      .prepare(
        `INSERT INTO rate_windows (key_id, window_start, count, lim, key_state)
         SELECT k.id, ?2, 1, k.rpm_limit, ${KEY_STATE}
         FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.id = ?1
         ON CONFLICT (key_id, window_start) DO UPDATE SET
           count = count + 1, lim = excluded.lim, key_state = excluded.key_state
         RETURNING count, lim`,
      )
      .bind(keyId, start, at),
    db.prepare("UPDATE api_keys SET inflight = inflight + ?2 WHERE id = ?1").bind(keyId, slots),
    db
      .prepare("UPDATE tenants SET balance = balance - ?2, inflight = inflight + ?3 WHERE id = ?1")
      .bind(tenantId, totalMicros, slots),
    spendStatement(db, keyId, dayPeriod(at), totalMicros, "daily_cap"),
    spendStatement(db, keyId, monthPeriod(at), totalMicros, "monthly_cap"),
  ];
  for (const job of jobs) {
    if (job.costMicros > 0) {
      statements.push(
        insertCharge(db, {
          tenantId,
          keyId,
          taskId: job.taskId,
          action: request.action,
          amountMicros: job.costMicros,
          step,
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
          .bind(job.taskId, tenantId, keyId, request.action, request.parentTaskId, job.costMicros, at),
      );
    } else {
      // A trigger refuses this once the task is settled (migrations/0004), so a /modal that
      // races a cancellation rolls back and charges nothing.
      statements.push(
        db.prepare("UPDATE tasks SET cost = cost + ?2 WHERE id = ?1").bind(job.taskId, job.costMicros),
      );
    }
  }
  if (request.idempotency) {
    statements.push(
      db
        .prepare(
          `INSERT INTO idempotency (tenant_id, idem_key, request_hash, task_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)`,
        )
        .bind(tenantId, request.idempotency.key, request.idempotency.requestHash, request.taskId, at),
    );
  }
  statements.push(hasEndpointsStatement(db, tenantId, keyId));
  try {
    const results = await db.batch<{ count: number; lim: number }>(statements);
    const window = results[0]?.results[0];
    const limit = window?.lim ?? request.rpmLimitHint ?? 0;
    return {
      ok: true,
      webhooks: hasEndpointsIn(results.at(-1)),
      rateLimit: {
        limit,
        remaining: Math.max(0, limit - (window?.count ?? 1)),
        resetSeconds: Math.max(1, Math.ceil((start + RATE_WINDOW_MS - at) / 1000)),
      },
    };
  } catch (error) {
    const refusal = refusalOf(error);
    if (refusal) return { ok: false, refusal };
    throw error;
  }
}

function spendStatement(db: D1Database, keyId: string, period: string, micros: number, capColumn: string) {
  return db
    .prepare(
      `INSERT INTO key_spend (key_id, period, spent, cap) SELECT id, ?2, ?3, ${capColumn} FROM api_keys WHERE id = ?1
       ON CONFLICT (key_id, period) DO UPDATE SET spent = spent + excluded.spent, cap = excluded.cap`,
    )
    .bind(keyId, period, micros);
}

/**
 * The statements that refund one step's charge: the balance, the key's spend in the periods
 * of the charge, and the refund row. Each is guarded by "this step's charge has no refund
 * yet" and the row comes last, so the batch is a no-op when run again.
 */
function refundStepStatements(
  db: D1Database,
  taskId: string,
  step: string,
  reason: string,
  at: number,
): D1PreparedStatement[] {
  return [
    // Written as key lookups (not UPDATE … FROM, which the planner answers with a table scan).
    db
      .prepare(
        `UPDATE tenants SET balance = balance + (SELECT micros FROM (${UNREFUNDED_CHARGE}))
         WHERE id = (SELECT tenant_id FROM tasks WHERE id = ?1) AND EXISTS (${UNREFUNDED_CHARGE})`,
      )
      .bind(taskId, step),
    ...["'d' || strftime('%Y-%m-%d'", "'m' || strftime('%Y-%m'"].map((period) =>
      db
        .prepare(
          `UPDATE key_spend SET spent = spent - (SELECT micros FROM (${UNREFUNDED_CHARGE}))
           WHERE key_id = (SELECT key_id FROM tasks WHERE id = ?1)
             AND period = (SELECT ${period}, created_at / 1000, 'unixepoch') FROM (${UNREFUNDED_CHARGE}))`,
        )
        .bind(taskId, step),
    ),
    insertRefundOfStep(db, taskId, step, reason, at),
  ];
}

/**
 * Refunds one step of an open task (a /modal the upstream refused or never ran) while the
 * task goes on. Returns true if this call wrote the refund.
 */
export async function refundStep(
  db: D1Database,
  request: { taskId: string; step: string; reason: string; at: number },
): Promise<boolean> {
  const results = await db.batch(
    refundStepStatements(db, request.taskId, request.step, request.reason, request.at),
  );
  return (results.at(-1)?.meta.changes ?? 0) === 1;
}

export interface SettleRequest {
  taskId: string;
  status: "SUCCESS" | "FAILURE" | "CANCEL";
  refund: boolean;
  /** The steps whose charges a refunding settlement gives back (default: the submit step). */
  refundSteps?: readonly string[];
  reason: string | null;
  failReason: string | null;
  upstreamTaskId: string | null;
  /** The pool member the task was submitted to (null: never forwarded). */
  upstreamId?: string | null;
  /** What the upstream reported it billed for this task, in micro-USD (null: it did not say). */
  upstreamCostMicros?: number | null;
  /** Upstream jobs this task's request made beyond the ones we charged for. */
  unpricedUpstreamJobs?: number;
  at: number;
}

/**
 * Settles a task exactly once, in one batch: frees its in-flight slots, refunds the charges
 * of the steps the state machine says (each at most once, whatever was refunded before),
 * and records the upstream's cost and the net charge beside it for margin. The slot and
 * task statements are guarded by `settled_at IS NULL`, so a repeated call changes nothing.
 * Returns true if this call settled the task.
 */
export async function settleTask(db: D1Database, request: SettleRequest): Promise<boolean> {
  return (await settleTaskAskingWebhooks(db, request, null)).settled;
}

/** A settlement, and whether the task's tenant has webhook endpoints for it now. */
export interface Settlement {
  /** This call settled the task (a repeated call changes nothing). */
  settled: boolean;
  /** Read in the same batch (false when no owner was given). */
  webhooks: boolean;
}

/**
 * `settleTask`, also reading in the same batch (no extra round trip) whether the task's
 * tenant has active endpoints for its key, so a task that admission found without endpoints
 * still sends its terminal event to one registered while it ran.
 */
export async function settleTaskAskingWebhooks(
  db: D1Database,
  request: SettleRequest,
  owner: { tenantId: string; keyId: string } | null,
): Promise<Settlement> {
  const question = owner ? [hasEndpointsStatement(db, owner.tenantId, owner.keyId)] : [];
  const results = await db.batch([...question, ...settlementStatements(db, request)]);
  return {
    settled: (results.at(-1)?.meta.changes ?? 0) === 1,
    webhooks: owner !== null && hasEndpointsIn(results[0]),
  };
}

/** The settlement batch; its last statement settles the task row (its change count says whether this run did). */
function settlementStatements(db: D1Database, request: SettleRequest): D1PreparedStatement[] {
  const { taskId, at } = request;
  const unsettled = "(SELECT 1 FROM tasks WHERE id = ?1 AND settled_at IS NULL)";
  const statements: D1PreparedStatement[] = [];
  if (request.refund) {
    // Refunds first: their guard needs the task still unsettled, which the last statement ends.
    for (const step of request.refundSteps ?? ["submit"]) {
      statements.push(...refundStepStatements(db, taskId, step, request.reason ?? "refund", at));
    }
  }
  statements.push(
    db
      .prepare(
        `UPDATE api_keys SET inflight = inflight - 1
         WHERE id = (SELECT key_id FROM tasks WHERE id = ?1) AND EXISTS ${unsettled}`,
      )
      .bind(taskId),
    db
      .prepare(
        `UPDATE tenants SET inflight = inflight - 1
         WHERE id = (SELECT tenant_id FROM tasks WHERE id = ?1) AND EXISTS ${unsettled}`,
      )
      .bind(taskId),
    db
      .prepare(
        `UPDATE tasks SET status = ?2, settled_at = ?3, finished_at = ?3, fail_reason = ?4,
           upstream_task_id = COALESCE(?5, upstream_task_id),
           upstream_cost = ?6, unpriced_upstream_jobs = ?7, upstream_id = COALESCE(?8, upstream_id),
           net_charge = (SELECT COALESCE(SUM(-amount), 0) FROM ledger WHERE task_id = ?1 AND kind = 'charge')
                      - (SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE task_id = ?1 AND kind = 'refund')
         WHERE id = ?1 AND settled_at IS NULL`,
      )
      .bind(
        taskId,
        request.status,
        at,
        request.failReason,
        request.upstreamTaskId,
        request.upstreamCostMicros ?? null,
        request.unpricedUpstreamJobs ?? 0,
        request.upstreamId ?? null,
      ),
  );
  return statements;
}

export async function recordLateUpstreamStatus(
  db: D1Database,
  taskId: string,
  status: string,
): Promise<void> {
  await db.prepare("UPDATE tasks SET late_upstream_status = ?2 WHERE id = ?1").bind(taskId, status).run();
}
