/**
 * D1 side of the archive (migrations/0013): which settled history is next to leave, the one
 * batch that removes it once its R2 object is written, and the reads that find archived
 * history again. The R2 side and the order of steps are in src/services/archive.ts.
 */
import { type Refused, refusedOr } from "./constraints";
import type { LedgerEntry, LedgerFilter, UsageDimension, UsageRow } from "./ledger-reads";
import { deleteArchivedLedgerRows } from "./ledger-writes";

/** A task row as archived (every column of `tasks`). */
export type ArchivedTask = Record<string, unknown> & { id: string; tenant_id: string; created_at: number };

/** One batch: a tenant's oldest settled tasks with all their ledger rows, and its oldest credits, of one month. */
export interface ArchivePlan {
  tenantId: string;
  /** UTC month of the tasks' and credits' creation, "YYYY-MM". */
  month: string;
  key: string;
  ledger: LedgerEntry[];
  tasks: ArchivedTask[];
}

const monthOf = (ms: number) => new Date(ms).toISOString().slice(0, 7);
const nextMonthStart = (month: string) => {
  const [y, m] = month.split("-").map(Number) as [number, number];
  return Date.UTC(y, m, 1);
};

/**
 * The object key is a function of the batch's content: its smallest ledger id (ids are never
 * reused, and a committed batch's rows are gone) or, for a batch of free tasks only, its first
 * task. A run that died after the put and before the commit plans the same batch again and
 * overwrites the same object.
 */
export function archiveKey(tenantId: string, month: string, ledger: LedgerEntry[], tasks: ArchivedTask[]) {
  const first = ledger.length
    ? `l${String(Math.min(...ledger.map((r) => r.id))).padStart(15, "0")}`
    : `t${tasks[0]!.id}`;
  return `ledger/${tenantId}/${month}/${first}.ndjson.gz`;
}

/**
 * The next batch of `tenantId` older than `cutoff`: settled (terminal, refunds written) tasks
 * created and settled before it, with every ledger row of theirs, and top-ups/adjustments
 * before it, all of the oldest month that has any. Null when nothing is due.
 */
export async function nextArchivePlan(
  db: D1Database,
  tenantId: string,
  cutoff: number,
  maxItems: number,
): Promise<ArchivePlan | null> {
  const [tasks, credits] = await db.batch([
    db
      .prepare(
        `SELECT * FROM tasks WHERE tenant_id = ?1 AND created_at < ?2 AND settled_at IS NOT NULL AND settled_at < ?2
         ORDER BY created_at LIMIT ?3`,
      )
      .bind(tenantId, cutoff, maxItems),
    db
      .prepare(
        `SELECT * FROM ledger WHERE tenant_id = ?1 AND created_at < ?2 AND task_id IS NULL
         ORDER BY created_at LIMIT ?3`,
      )
      .bind(tenantId, cutoff, maxItems),
  ]);
  const taskRows = tasks!.results as ArchivedTask[];
  const creditRows = credits!.results as unknown as LedgerEntry[];
  const firstAt = Math.min(taskRows[0]?.created_at ?? Infinity, creditRows[0]?.created_at ?? Infinity);
  if (firstAt === Infinity) return null;
  const month = monthOf(firstAt);
  const end = nextMonthStart(month);
  const monthTasks = taskRows.filter((t) => t.created_at < end);
  const monthCredits = creditRows.filter((r) => r.created_at < end);
  const taskLedger = monthTasks.length
    ? ((
        await db
          // CROSS JOIN keeps json_each outside: one ledger_by_task_kind search per task, whatever the statistics.
          .prepare("SELECT l.* FROM json_each(?1) j CROSS JOIN ledger l ON l.task_id = j.value")
          .bind(JSON.stringify(monthTasks.map((t) => t.id)))
          .all<LedgerEntry>()
      ).results ?? [])
    : [];
  const ledger = [...monthCredits, ...taskLedger].sort((a, b) => a.id - b.id);
  return { tenantId, month, key: archiveKey(tenantId, month, ledger, monthTasks), ledger, tasks: monthTasks };
}

export type ArchiveRefusal = "archive_object_complete" | "ledger_append_only" | "task_not_archivable";

/**
 * One D1 batch, all or nothing: records the (already written and verified) object, deletes
 * exactly its rows (the triggers move their amounts into the checkpoint and count them into
 * the object's row) and marks the object committed, which its CHECK refuses unless the rows
 * and sum deleted are the rows and sum the object holds. Usage per day is summed first, from
 * the rows about to go.
 */
export async function commitArchive(
  db: D1Database,
  plan: ArchivePlan,
  bytes: number,
  now: number,
): Promise<{ committed: true } | Refused<ArchiveRefusal>> {
  const ids = JSON.stringify(plan.ledger.map((r) => r.id));
  const taskIds = JSON.stringify(plan.tasks.map((t) => t.id));
  const sum = plan.ledger.reduce((s, r) => s + r.amount, 0);
  const ats = plan.ledger.map((r) => r.created_at);
  const result = await refusedOr(
    db.batch([
      db
        .prepare(
          `INSERT INTO archive_objects (object_key, tenant_id, month, ledger_rows, ledger_sum, task_rows,
             min_id, max_id, first_at, last_at, bytes, created_at)
           VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)`,
        )
        .bind(
          plan.key,
          plan.tenantId,
          plan.month,
          plan.ledger.length,
          sum,
          plan.tasks.length,
          plan.ledger.length ? plan.ledger[0]!.id : null,
          plan.ledger.length ? plan.ledger.at(-1)!.id : null,
          ats.length ? Math.min(...ats) : null,
          ats.length ? Math.max(...ats) : null,
          bytes,
          now,
        ),
      db
        .prepare(
          `INSERT INTO ledger_checkpoints (tenant_id, updated_at) VALUES (?1, ?2)
           ON CONFLICT (tenant_id) DO UPDATE SET updated_at = excluded.updated_at`,
        )
        .bind(plan.tenantId, now),
      db
        .prepare(
          `INSERT INTO archive_usage (tenant_id, day, key_id, action, charged_micros, refunded_micros,
             charged_tasks, refunded_tasks)
           SELECT tenant_id, strftime('%Y-%m-%d', created_at / 1000, 'unixepoch'), COALESCE(key_id, ''),
             COALESCE(action, ''),
             SUM(CASE WHEN kind = 'charge' THEN -amount ELSE 0 END), SUM(CASE WHEN kind = 'refund' THEN amount ELSE 0 END),
             COUNT(CASE WHEN kind = 'charge' THEN 1 END), COUNT(CASE WHEN kind = 'refund' THEN 1 END)
           FROM ledger WHERE id IN (SELECT value FROM json_each(?1)) AND kind IN ('charge', 'refund')
           GROUP BY 1, 2, 3, 4
           ON CONFLICT (tenant_id, day, key_id, action) DO UPDATE SET
             charged_micros = charged_micros + excluded.charged_micros,
             refunded_micros = refunded_micros + excluded.refunded_micros,
             charged_tasks = charged_tasks + excluded.charged_tasks,
             refunded_tasks = refunded_tasks + excluded.refunded_tasks`,
        )
        .bind(ids),
      deleteArchivedLedgerRows(db, ids),
      db.prepare("DELETE FROM tasks WHERE id IN (SELECT value FROM json_each(?1))").bind(taskIds),
      db.prepare("UPDATE archive_objects SET state = 'committed' WHERE object_key = ?1").bind(plan.key),
    ]),
    ["archive_object_complete", "ledger_append_only", "task_not_archivable"] as const,
  );
  return "refused" in result ? result : { committed: true };
}

/** Tenants in id order after `afterId`, a page at a time (the archive job's walk). */
export async function tenantIdsAfter(db: D1Database, afterId: string, limit: number): Promise<string[]> {
  const { results } = await db
    .prepare("SELECT id FROM tenants WHERE id > ?1 ORDER BY id LIMIT ?2")
    .bind(afterId, limit)
    .all<{ id: string }>();
  return results.map((r) => r.id);
}

export interface ArchiveObjectRow {
  object_key: string;
  tenant_id: string;
  min_id: number;
  max_id: number;
}

/**
 * Committed objects holding ledger rows of `tenantId` (or of every tenant) created in
 * [from, to) with ids above `afterId`, in order of their first id: what a ledger page merges
 * with the hot rows.
 */
export async function archiveObjectsFor(
  db: D1Database,
  range: { tenantId?: string; from: number; to: number; afterId: number },
): Promise<ArchiveObjectRow[]> {
  const tenant = range.tenantId ? "tenant_id = ?4 AND " : "";
  const { results } = await db
    .prepare(
      `SELECT object_key, tenant_id, min_id, max_id FROM archive_objects
       WHERE ${tenant}last_at >= ?1 AND first_at < ?2 AND max_id > ?3 AND state = 'committed'
       ORDER BY min_id`,
    )
    .bind(range.from, range.to, range.afterId, ...(range.tenantId ? [range.tenantId] : []))
    .all<ArchiveObjectRow>();
  return results;
}

const USAGE_DIMENSION_SQL: Record<UsageDimension, string> = {
  day: "day",
  tenant: "tenant_id",
  key: "NULLIF(key_id, '')",
  action: "NULLIF(action, '')",
};

/**
 * Usage totals of archived history (archive_usage), grouped like `usageTotals`. Archived
 * history is counted by whole UTC days: a day counts when its date is in [date(from), date(to)).
 */
export async function archivedUsageTotals(
  db: D1Database,
  filter: LedgerFilter & { from: number },
  groupBy: UsageDimension[],
): Promise<UsageRow[]> {
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  const clauses = ["day >= ?1", "day < ?2"];
  const params: unknown[] = [day(filter.from), filter.to === undefined ? "9999-12-31" : day(filter.to)];
  const add = (clause: string, value: unknown) => {
    params.push(value);
    clauses.push(`${clause} ?${params.length}`);
  };
  if (filter.tenantId) add("tenant_id =", filter.tenantId);
  if (filter.keyId) add("key_id =", filter.keyId);
  if (filter.action) add("action =", filter.action);
  const dims = groupBy.map((d) => `${USAGE_DIMENSION_SQL[d]} AS "${d}"`);
  const group = groupBy.length ? `GROUP BY ${groupBy.map((d) => `"${d}"`).join(", ")}` : "";
  const { results } = await db
    .prepare(
      `SELECT ${[
        ...dims,
        "COALESCE(SUM(charged_micros), 0) AS charged_micros",
        "COALESCE(SUM(refunded_micros), 0) AS refunded_micros",
        "COALESCE(SUM(charged_micros - refunded_micros), 0) AS net_micros",
        "COALESCE(SUM(charged_tasks), 0) AS charged_tasks",
        "COALESCE(SUM(refunded_tasks), 0) AS refunded_tasks",
      ].join(", ")} FROM archive_usage WHERE ${clauses.join(" AND ")} ${group}`,
    )
    .bind(...params)
    .all<UsageRow>();
  return results;
}
