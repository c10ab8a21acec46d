import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";
import { lastEventId, SSE_HEADERS, SseBroadcaster, type SseEvent } from "./sse-broadcaster";

/** How many recent changes a tenant stream can replay after a reconnect. */
const KEEP_EVENTS = 10_000;

/**
 * One per tenant: the tenant-wide stream of its tasks' changes for dashboards. Task
 * objects push each change here (no D1 polling); the log makes resume by Last-Event-ID
 * work across reconnects and deploys.
 */
export class TenantHub extends DurableObject<Env> {
  private readonly broadcaster = new SseBroadcaster();
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(
      `CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL,
        at INTEGER NOT NULL, data TEXT NOT NULL)`,
    );
    this.sql.exec("CREATE INDEX IF NOT EXISTS events_by_task ON events(task_id, seq)");
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
    this.broadcaster.broadcast({ id: seq, event: "status", data });
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

  async subscriberCount(): Promise<number> {
    return this.broadcaster.size;
  }
}
