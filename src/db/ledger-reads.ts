export interface LedgerEntry {
  id: number;
  tenant_id: string;
  key_id: string | null;
  task_id: string | null;
  kind: "topup" | "charge" | "refund" | "adjustment" | "storage";
  action: string | null;
  amount: number;
  balance_after: number;
  reason: string | null;
  ref_id: number | null;
  step: string | null;
  created_at: number;
}

export interface LedgerFilter {
  tenantId?: string;
  keyId?: string;
  taskId?: string;
  kind?: string;
  action?: string;
  from?: number;
  to?: number;
}

function where(filter: LedgerFilter, afterId: number): { sql: string; params: unknown[] } {
  const clauses = ["id > ?1"];
  const params: unknown[] = [afterId];
  const add = (clause: string, value: unknown) => {
    params.push(value);
    clauses.push(clause.replace("?", `?${params.length}`));
  };
  if (filter.tenantId) add("tenant_id = ?", filter.tenantId);
  if (filter.keyId) add("key_id = ?", filter.keyId);
  if (filter.taskId) add("task_id = ?", filter.taskId);
  if (filter.kind) add("kind = ?", filter.kind);
  if (filter.action) add("action = ?", filter.action);
  // A range is always bounded on both sides, so that SQLite serves it from a time index
  // (with one bound only it prefers walking the whole ledger in id order).
  if (filter.from !== undefined || filter.to !== undefined) {
    add("created_at >= ?", filter.from ?? 0);
    add("created_at < ?", filter.to ?? Number.MAX_SAFE_INTEGER);
  }
  return { sql: clauses.join(" AND "), params };
}

/** One page of the ledger in id order; the cursor is the last id seen. */
export async function ledgerPage(db: D1Database, filter: LedgerFilter, afterId: number, limit: number) {
  const { sql, params } = where(filter, afterId);
  params.push(limit + 1);
  const { results } = await db
    .prepare(`SELECT * FROM ledger WHERE ${sql} ORDER BY id LIMIT ?${params.length}`)
    .bind(...params)
    .all<LedgerEntry>();
  const more = results.length > limit;
  const rows = more ? results.slice(0, limit) : results;
  return { rows, nextCursor: more ? rows.at(-1)!.id : null };
}

export type UsageDimension = "day" | "tenant" | "key" | "action";
const DIMENSION_SQL: Record<UsageDimension, string> = {
  day: "strftime('%Y-%m-%d', created_at / 1000, 'unixepoch')",
  tenant: "tenant_id",
  key: "key_id",
  action: "action",
};

export interface UsageRow {
  day?: string;
  tenant?: string;
  key?: string | null;
  action?: string | null;
  charged_micros: number;
  refunded_micros: number;
  net_micros: number;
  charged_tasks: number;
  refunded_tasks: number;
}

/** Totals of charges and refunds grouped by the chosen dimensions. */
export async function usageTotals(
  db: D1Database,
  filter: LedgerFilter,
  groupBy: UsageDimension[],
): Promise<UsageRow[]> {
  const { sql, params } = where({ ...filter, kind: undefined }, 0);
  const dims = groupBy.map((d) => `${DIMENSION_SQL[d]} AS "${d}"`);
  const select = [
    ...dims,
    "COALESCE(SUM(CASE WHEN kind = 'charge' THEN -amount ELSE 0 END), 0) AS charged_micros",
    "COALESCE(SUM(CASE WHEN kind = 'refund' THEN amount ELSE 0 END), 0) AS refunded_micros",
    "COALESCE(SUM(CASE WHEN kind IN ('charge', 'refund') THEN -amount ELSE 0 END), 0) AS net_micros",
    "COUNT(CASE WHEN kind = 'charge' THEN 1 END) AS charged_tasks",
    "COUNT(CASE WHEN kind = 'refund' THEN 1 END) AS refunded_tasks",
  ];
  const group = groupBy.length
    ? `GROUP BY ${groupBy.map((d) => `"${d}"`).join(", ")} ORDER BY ${groupBy.map((d) => `"${d}"`).join(", ")}`
    : "";
  const { results } = await db
    .prepare(`SELECT ${select.join(", ")} FROM ledger WHERE ${sql} AND kind IN ('charge', 'refund') ${group}`)
    .bind(...params)
    .all<UsageRow>();
  return results;
}

export interface Breach {
  check: string;
  tenant_id?: string;
  task_id?: string;
  ledger_id?: number;
  detail: string;
}

/** Checks the money invariants over the whole database and lists every breach. */
export async function reconcile(db: D1Database): Promise<{ checks: string[]; breaches: Breach[] }> {
  const checks = {
    // Archived history counts through its checkpoint (migrations/0013): balance = checkpoint + Σ hot rows.
    balance_matches_ledger: `SELECT t.id AS tenant_id, t.balance, COALESCE(SUM(l.amount), 0) AS ledger_sum,
        COALESCE((SELECT c.archived_sum FROM ledger_checkpoints c WHERE c.tenant_id = t.id), 0) AS archived_sum
      FROM tenants t LEFT JOIN ledger l ON l.tenant_id = t.id GROUP BY t.id
      HAVING ledger_sum + archived_sum != t.balance`,
    refund_matches_charge: `SELECT r.id AS ledger_id, r.task_id, r.tenant_id FROM ledger r
      LEFT JOIN ledger c ON c.id = r.ref_id AND c.kind = 'charge' AND c.task_id = r.task_id
      WHERE r.kind = 'refund' AND (c.id IS NULL OR r.amount != -c.amount OR r.step IS NOT c.step)`,
    charged_once_per_step: `SELECT task_id, step, COUNT(*) AS n FROM ledger WHERE kind = 'charge'
      GROUP BY task_id, step HAVING n > 1`,
    failed_tasks_refunded: `SELECT k.id AS task_id, k.tenant_id, k.status, c.step FROM tasks k
      JOIN ledger c ON c.task_id = k.id AND c.kind = 'charge'
      WHERE k.status IN ('FAILURE', 'CANCEL') AND k.settled_at IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM ledger r WHERE r.ref_id = c.id AND r.kind = 'refund')`,
    successful_tasks_not_refunded: `SELECT k.id AS task_id, k.tenant_id FROM tasks k
      JOIN ledger r ON r.task_id = k.id AND r.kind = 'refund' AND r.step = 'submit' WHERE k.status = 'SUCCESS'`,
    task_cost_matches_charge: `SELECT k.id AS task_id, k.tenant_id, k.cost,
        COALESCE((SELECT SUM(-c.amount) FROM ledger c WHERE c.task_id = k.id AND c.kind = 'charge'), 0) AS charged
      FROM tasks k WHERE k.cost != charged`,
    upstream_cost_exceeds_charge: `SELECT id AS task_id, tenant_id, upstream_cost, net_charge FROM tasks
      WHERE status = 'SUCCESS' AND settled_at IS NOT NULL AND upstream_cost IS NOT NULL
        AND upstream_cost > COALESCE(net_charge, cost)`,
    unpriced_upstream_jobs: `SELECT id AS task_id, tenant_id, unpriced_upstream_jobs FROM tasks
      WHERE unpriced_upstream_jobs > 0`,
    inflight_matches_open_tasks: `SELECT t.id AS tenant_id, t.inflight,
        (SELECT COUNT(*) FROM tasks k WHERE k.tenant_id = t.id AND k.settled_at IS NULL) AS open_tasks
      FROM tenants t WHERE t.inflight != open_tasks`,
    key_inflight_matches_open_tasks: `SELECT k.tenant_id, k.id AS key_id, k.inflight, COALESCE(o.n, 0) AS open_tasks
      FROM api_keys k LEFT JOIN (SELECT key_id, COUNT(*) AS n FROM tasks WHERE settled_at IS NULL GROUP BY key_id) o
        ON o.key_id = k.id
      WHERE k.inflight != COALESCE(o.n, 0)`,
    late_upstream_results: `SELECT id AS task_id, tenant_id, late_upstream_status FROM tasks
      WHERE late_upstream_status IS NOT NULL`,
  } as const;
  const names = Object.keys(checks) as (keyof typeof checks)[];
  const results = await db.batch<Record<string, unknown>>(names.map((name) => db.prepare(checks[name])));
  const breaches: Breach[] = [];
  names.forEach((name, i) => {
    for (const row of results[i]!.results) {
      const { tenant_id, task_id, ledger_id, ...rest } = row as Record<string, unknown>;
      breaches.push({
        check: name,
        ...(tenant_id ? { tenant_id: String(tenant_id) } : {}),
        ...(task_id ? { task_id: String(task_id) } : {}),
        ...(ledger_id ? { ledger_id: Number(ledger_id) } : {}),
        detail: JSON.stringify(rest),
      });
    }
  });
  return { checks: names, breaches };
}
