import { DurableObject } from "cloudflare:workers";
import {
  isModerationFailure,
  judge,
  type ModerationState,
  type ModerationVerdict,
} from "../domain/moderation";
import { isTerminal, STATUSES, type TaskStatus } from "../domain/task-machine";
import { configFrom, type Env } from "../env";
import { logEvent } from "../log";
import { lastEventId, SSE_HEADERS, SseBroadcaster, type SseEvent } from "./sse-broadcaster";

/** How many recent changes a tenant stream can replay after a reconnect. */
export const KEEP_EVENTS = 10_000;

/**
 * Most open tasks one hub remembers. A tenant's in-flight cap is at most 100,000 (PATCH
 * /admin/tenants/{id}), so every task a tenant can have open at once fits; past the bound the
 * least recently changed entry goes (one whose terminal change never arrived, most likely).
 */
export const MAX_OPEN_TASKS = 100_000;

/** An open task's latest change, as its task object published it. */
export interface LiveTask {
  status: TaskStatus;
  /** 0–100, the task object's `progress` without its "%". */
  progress: number;
  /** When the task object made the change (ms). */
  updatedAt: number;
}

const isStatus = (value: unknown): value is TaskStatus => STATUSES.includes(value as TaskStatus);

function progressOf(view: Record<string, unknown>): number {
  const percent = Number.parseInt(String(view.progress ?? "0"), 10);
  return Number.isFinite(percent) ? Math.max(0, Math.min(100, percent)) : 0;
}

/**
 * The latest status and progress of a tenant's open tasks, kept from the changes the hub
 * already receives, so task lists can show live state in one call per tenant: D1 learns
 * nothing until settlement, and nobody asks each task's object. A row is removed at the
 * task's terminal change; the table never holds more than `limit` rows.
 */
export class OpenTaskTable {
  /** Rows in the table: counted when the object starts, then kept in step with each write. */
  private rows: number;

  constructor(
    private readonly sql: SqlStorage,
    private readonly limit = MAX_OPEN_TASKS,
  ) {
    sql.exec(
      `CREATE TABLE IF NOT EXISTS open_tasks (task_id TEXT PRIMARY KEY, status TEXT NOT NULL,
        progress INTEGER NOT NULL, updated_at INTEGER NOT NULL, seq INTEGER NOT NULL)`,
    );
    sql.exec("CREATE INDEX IF NOT EXISTS open_tasks_by_seq ON open_tasks(seq)");
    this.rows = sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM open_tasks").one().n;
  }

  /** Records one change (`seq` orders changes for eviction); a terminal change removes the task. */
  record(taskId: string, seq: number, at: number, view: Record<string, unknown>): void {
    const status = view.status;
    if (!isStatus(status)) return;
    if (isTerminal(status)) {
      const removed = this.sql
        .exec("DELETE FROM open_tasks WHERE task_id = ?1 RETURNING task_id", taskId)
        .toArray().length;
      this.rows -= removed;
      return;
    }
    const progress = progressOf(view);
    const updated = this.sql
      .exec(
        `UPDATE open_tasks SET status = ?2, progress = ?3, updated_at = ?4, seq = ?5
         WHERE task_id = ?1 RETURNING task_id`,
        taskId,
        status,
        progress,
        at,
        seq,
      )
      .toArray().length;
    if (updated) return;
    this.sql.exec(
      "INSERT INTO open_tasks (task_id, status, progress, updated_at, seq) VALUES (?1, ?2, ?3, ?4, ?5)",
      taskId,
      status,
      progress,
      at,
      seq,
    );
    this.rows += 1;
    if (this.rows > this.limit) this.evictOldest(this.rows - this.limit);
  }

  /** The live state of those of `taskIds` the table holds. */
  get(taskIds: readonly string[]): Record<string, LiveTask> {
    const live: Record<string, LiveTask> = {};
    if (taskIds.length === 0) return live;
    // One bound parameter however many ids (a statement takes at most 100).
    const rows = this.sql.exec<{ task_id: string; status: string; progress: number; updated_at: number }>(
      `SELECT task_id, status, progress, updated_at FROM open_tasks
       WHERE task_id IN (SELECT value FROM json_each(?1))`,
      JSON.stringify(taskIds),
    );
    for (const row of rows) {
      live[row.task_id] = {
        status: row.status as TaskStatus,
        progress: row.progress,
        updatedAt: row.updated_at,
      };
    }
    return live;
  }

  size(): number {
    return this.rows;
  }

  /** Every open task's id (at most `limit`). */
  taskIds(): string[] {
    return this.sql
      .exec<{ task_id: string }>("SELECT task_id FROM open_tasks")
      .toArray()
      .map((row) => row.task_id);
  }

  private evictOldest(count: number): void {
    const evicted = this.sql
      .exec(
        `DELETE FROM open_tasks WHERE task_id IN (SELECT task_id FROM open_tasks ORDER BY seq LIMIT ?1)
         RETURNING task_id`,
        count,
      )
      .toArray().length;
    this.rows -= evicted;
  }
}

/**
 * One per tenant: the tenant-wide stream of its tasks' changes for dashboards, and the live
 * state of its open tasks for task lists. Task objects push each change here (no D1
 * polling); the log makes resume by Last-Event-ID work across reconnects and deploys.
 */
export class TenantHub extends DurableObject<Env> {
  private readonly broadcaster = new SseBroadcaster();
  private readonly sql: SqlStorage;
  private readonly openTasks: OpenTaskTable;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    // No AUTOINCREMENT: the log is trimmed from its oldest end only and always keeps its newest
    // rows, so the rowid (max + 1) keeps growing without a sqlite_sequence write per event.
    // Event ids must only grow (clients resume after the last one they saw); hubs created with
    // AUTOINCREMENT keep it.
    this.sql.exec(
      `CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, task_id TEXT NOT NULL,
        at INTEGER NOT NULL, data TEXT NOT NULL)`,
    );
    this.sql.exec("CREATE INDEX IF NOT EXISTS events_by_task ON events(task_id, seq)");
    this.openTasks = new OpenTaskTable(this.sql);
    // Moderation strikes: one per task the upstream failed for its prompt (a replayed change counts once).
    this.sql.exec(
      "CREATE TABLE IF NOT EXISTS moderation_strikes (task_id TEXT PRIMARY KEY, at INTEGER NOT NULL)",
    );
    this.sql.exec(
      `CREATE TABLE IF NOT EXISTS moderation (id INTEGER PRIMARY KEY CHECK (id = 1), since INTEGER NOT NULL,
        cooldown_until INTEGER, level INTEGER NOT NULL, last_slowed_at INTEGER)`,
    );
  }

  /**
   * Asked before each admission: whether this tenant may submit now, judged on its moderation
   * strikes (src/domain/moderation.ts). Runs without an await, so concurrent submits are judged one by one.
   */
  async moderationCheck(tenantId: string, now: number): Promise<ModerationVerdict> {
    const policy = configFrom(this.env).moderation;
    const row = this.sql
      .exec<{ since: number; cooldown_until: number | null; level: number; last_slowed_at: number | null }>(
        "SELECT since, cooldown_until, level, last_slowed_at FROM moderation WHERE id = 1",
      )
      .toArray()[0];
    const since = Math.max(row?.since ?? 0, now - policy.windowMs);
    const strikes = this.sql
      .exec<{ at: number }>("SELECT at FROM moderation_strikes WHERE at > ?1", since)
      .toArray()
      .map((r) => r.at);
    if (!strikes.length && !row?.cooldown_until) return { kind: "ok" };
    const state: ModerationState = {
      strikes,
      cooldownUntil: row?.cooldown_until ?? null,
      level: row?.level ?? 0,
      lastSlowedAt: row?.last_slowed_at ?? null,
    };
    const { verdict, next } = judge(state, now, policy);
    const started = verdict.kind === "cooldown" && verdict.started;
    this.sql.exec(
      `INSERT INTO moderation (id, since, cooldown_until, level, last_slowed_at) VALUES (1, ?1, ?2, ?3, ?4)
       ON CONFLICT (id) DO UPDATE SET since = excluded.since, cooldown_until = excluded.cooldown_until,
         level = excluded.level, last_slowed_at = excluded.last_slowed_at`,
      started ? now : (row?.since ?? 0),
      next.cooldownUntil,
      next.level,
      next.lastSlowedAt,
    );
    if (started) {
      this.sql.exec("DELETE FROM moderation_strikes WHERE at <= ?1", now);
      logEvent("tenant_moderation_cooldown", {
        tenant_id: tenantId,
        strikes: strikes.length,
        level: next.level,
        cooldown_ms: verdict.retryAfterMs,
      });
    } else if (verdict.kind === "slowed") {
      logEvent("tenant_moderation_slowed", { tenant_id: tenantId, strikes: strikes.length });
    }
    return verdict;
  }

  /** A task of this tenant failed upstream for its prompt: one strike (once per task). */
  private countModerationFailure(taskId: string, data: Record<string, unknown>): void {
    if (data.status !== "FAILURE" || !isModerationFailure(data.fail_reason as string | null)) return;
    // Strikes older than the window never count again: the table holds one window's worth.
    const windowMs = configFrom(this.env).moderation.windowMs;
    this.sql.exec("DELETE FROM moderation_strikes WHERE at <= ?1", Date.now() - windowMs);
    const inserted = this.sql
      .exec(
        "INSERT INTO moderation_strikes (task_id, at) VALUES (?1, ?2) ON CONFLICT DO NOTHING RETURNING task_id",
        taskId,
        Date.now(),
      )
      .toArray();
    if (inserted.length) logEvent("tenant_moderation_strike", { task_id: taskId });
  }

  /** True when every one of these tasks' latest change in the log is terminal. */
  private allFinished(taskIds: Set<string>): boolean {
    for (const taskId of taskIds) {
      const last = this.sql
        .exec<{ data: string }>(
          "SELECT data FROM events WHERE task_id = ?1 ORDER BY seq DESC LIMIT 1",
          taskId,
        )
        .toArray()[0];
      const status = last ? (JSON.parse(last.data) as { status?: string }).status : undefined;
      if (status !== "SUCCESS" && status !== "FAILURE" && status !== "CANCEL") return false;
    }
    return true;
  }

  /** Called by a TaskObject for each change of one of this tenant's tasks, in order. */
  async publish(taskId: string, at: number, data: Record<string, unknown>): Promise<void> {
    const seq = this.sql
      .exec<{ seq: number }>(
        "INSERT INTO events (task_id, at, data) VALUES (?1, ?2, ?3) RETURNING seq",
        taskId,
        at,
        JSON.stringify(data),
      )
      .one().seq;
    if (seq % 1000 === 0) this.sql.exec("DELETE FROM events WHERE seq <= ?1", seq - KEEP_EVENTS);
    this.openTasks.record(taskId, seq, at, data);
    this.countModerationFailure(taskId, data);
    this.broadcaster.broadcast({ id: seq, event: "status", data }, { task_id: taskId, stream: "tenant" });
  }

  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const scope = url.searchParams.get("tasks");
    const allowed = scope ? new Set(scope.split(",")) : null;
    const after = lastEventId(request);
    const backlog: SseEvent[] =
      after >= 0
        ? this.sql
            .exec<{ seq: number; task_id: string; data: string }>(
              "SELECT seq, task_id, data FROM events WHERE seq > ?1 ORDER BY seq",
              after,
            )
            .toArray()
            .filter((row) => !allowed || allowed.has(row.task_id))
            .map((row) => ({ id: row.seq, event: "status", data: JSON.parse(row.data) }))
        : [];
    // A token whose tasks have all finished, resuming with nothing new: 204, so EventSource stops.
    if (allowed && after >= 0 && backlog.length === 0 && this.allFinished(allowed)) {
      return new Response(null, { status: 204 });
    }
    const filter = allowed
      ? (event: SseEvent) => allowed.has(String((event.data as { id?: string }).id))
      : undefined;
    return new Response(this.broadcaster.subscribe(backlog, { filter }), { headers: SSE_HEADERS });
  }

  /**
   * The latest status and progress of those of these tasks that are open (a page of a task
   * list: one call per tenant instead of one per task). Tasks the hub has not heard of, and
   * finished ones, are absent.
   */
  async liveTasks(taskIds: string[]): Promise<Record<string, LiveTask>> {
    return this.openTasks.get(taskIds);
  }

  async subscriberCount(): Promise<number> {
    return this.broadcaster.size;
  }

  /**
   * A webhook endpoint was registered: tells every open task this hub knows, so those that
   * admission found without endpoints publish their later changes to webhooks. Answers how
   * many were told once all were asked (a task that missed it still sends its terminal event:
   * settlement reads the endpoints again).
   */
  async webhooksChanged(): Promise<number> {
    const taskIds = this.openTasks.taskIds();
    let told = 0;
    for (let i = 0; i < taskIds.length; i += TELL_AT_ONCE) {
      const answers = await Promise.allSettled(
        taskIds
          .slice(i, i + TELL_AT_ONCE)
          .map((taskId) => this.env.TASKS.get(this.env.TASKS.idFromName(taskId)).webhooksChanged()),
      );
      for (const answer of answers) {
        if (answer.status === "fulfilled") told++;
        else logEvent("webhooks_change_not_told", { error: String(answer.reason) });
      }
    }
    return told;
  }
}

/** Open tasks told of a webhook change at once (RPCs in flight from one hub). */
const TELL_AT_ONCE = 50;
