/**
 * Reads of the `tasks` table for operators (the admin task list). The table holds what
 * billing needs: the status is NOT_START until the task settles, then its terminal
 * status; live progress and results live in each task's Durable Object.
 */
export interface TaskRow {
  id: string;
  tenant_id: string;
  key_id: string;
  action: string;
  parent_task_id: string | null;
  upstream_task_id: string | null;
  status: string;
  cost: number;
  created_at: number;
  finished_at: number | null;
  settled_at: number | null;
  fail_reason: string | null;
  late_upstream_status: string | null;
}

export const TERMINAL_STATUSES = ["SUCCESS", "FAILURE", "CANCEL"] as const;
/** `open`: not settled yet (anything before SUCCESS, FAILURE or CANCEL). */
export type TaskListStatus = "open" | (typeof TERMINAL_STATUSES)[number];

export interface TaskFilter {
  tenantId?: string;
  keyId?: string;
  status?: TaskListStatus;
  action?: string;
}

/**
 * One page of tasks, newest first. Task ids are ULIDs, so id order is creation order and
 * the cursor is simply the last id seen (the primary key index serves the scan).
 */
export async function listTasks(
  db: D1Database,
  filter: TaskFilter,
  before: string | null,
  limit: number,
): Promise<{ rows: TaskRow[]; nextCursor: string | null }> {
  const clauses: string[] = [];
  const params: unknown[] = [];
  const add = (clause: string, value?: unknown) => {
    if (value !== undefined) params.push(value);
    clauses.push(clause.replace("?", `?${params.length}`));
  };
  if (before) add("id < ?", before);
  if (filter.tenantId) add("tenant_id = ?", filter.tenantId);
  if (filter.keyId) add("key_id = ?", filter.keyId);
  if (filter.action) add("action = ?", filter.action);
  if (filter.status === "open") add("settled_at IS NULL");
  else if (filter.status) add("status = ? AND settled_at IS NOT NULL", filter.status);
  params.push(limit + 1);
  const where = clauses.length ? `WHERE ${clauses.join(" AND ")}` : "";
  const { results } = await db
    .prepare(`SELECT * FROM tasks ${where} ORDER BY id DESC LIMIT ?${params.length}`)
    .bind(...params)
    .all<TaskRow>();
  const more = results.length > limit;
  const rows = more ? results.slice(0, limit) : results;
  return { rows, nextCursor: more ? rows.at(-1)!.id : null };
}

export async function getTaskRow(db: D1Database, id: string): Promise<TaskRow | null> {
  return db.prepare("SELECT * FROM tasks WHERE id = ?1").bind(id).first<TaskRow>();
}

/** Open (unsettled) tasks admitted before `before`, oldest first; served by `tasks_open_by_age`. */
export async function openTasksAdmittedBefore(
  db: D1Database,
  before: number,
  limit: number,
): Promise<Array<Pick<TaskRow, "id" | "tenant_id" | "created_at">>> {
  const { results } = await db
    .prepare(
      `SELECT id, tenant_id, created_at FROM tasks
       WHERE settled_at IS NULL AND created_at < ?1 ORDER BY created_at LIMIT ?2`,
    )
    .bind(before, limit)
    .all<Pick<TaskRow, "id" | "tenant_id" | "created_at">>();
  return results;
}
