/**
 * The task's event log: every change of its view, in order, durable (SSE clients resume
 * from it by Last-Event-ID), pushed live to the task's SSE subscribers and, one after
 * another, to the tenant's hub (so the tenant stream keeps the order).
 */
import { logEvent } from "../../log";
import { lastEventId, SSE_HEADERS, type SseBroadcaster } from "../sse-broadcaster";
import type { StoredEvent } from "./contract";

/** Where the tenant-wide stream gets each change (the TenantHub object of the task's tenant). */
export interface TenantFeed {
  publish(taskId: string, at: number, data: Record<string, unknown>): Promise<unknown>;
}

export class EventLog {
  /** Changes go to the tenant's hub one after another, so the tenant stream keeps their order. */
  private hubQueue: Promise<void> = Promise.resolve();

  constructor(
    private readonly sql: SqlStorage,
    private readonly subscribers: SseBroadcaster,
  ) {}

  /** Appends one change and pushes it to subscribers and to the tenant's feed; returns its seq. */
  append(at: number, data: Record<string, unknown>, taskId: string, tenant: TenantFeed): number {
    const seq = this.sql
      .exec<{ seq: number }>(
        "INSERT INTO events (at, data) VALUES (?1, ?2) RETURNING seq",
        at,
        JSON.stringify(data),
      )
      .one().seq;
    this.subscribers.broadcast({ id: seq, event: "status", data }, { task_id: taskId });
    this.hubQueue = this.hubQueue
      .then(() => tenant.publish(taskId, at, data))
      .then(
        () => {},
        (error) => logEvent("tenant_hub_publish_failed", { task_id: taskId, error: String(error) }),
      );
    return seq;
  }

  /** The latest change (null before the first). */
  latest(): StoredEvent | null {
    const row = this.sql
      .exec<{ seq: number; at: number; data: string }>(
        "SELECT seq, at, data FROM events ORDER BY seq DESC LIMIT 1",
      )
      .toArray()[0];
    return row ? { seq: row.seq, at: row.at, data: JSON.parse(row.data) } : null;
  }

  after(afterSeq: number): StoredEvent[] {
    return this.sql
      .exec<{ seq: number; at: number; data: string }>(
        "SELECT seq, at, data FROM events WHERE seq > ?1 ORDER BY seq",
        afterSeq,
      )
      .toArray()
      .map((row) => ({ seq: row.seq, at: row.at, data: JSON.parse(row.data) }));
  }

  /**
   * The SSE answer to a subscriber: a new one gets the current view (under the latest seq),
   * a resuming one what it missed. A reconnect to a finished task that has seen everything
   * gets 204, the only answer that makes an EventSource stop reconnecting.
   */
  subscribe(request: Request, current: Record<string, unknown>, finished: boolean): Response {
    const after = lastEventId(request);
    const backlog =
      after >= 0
        ? this.after(after).map((event) => ({ id: event.seq, event: "status", data: event.data }))
        : this.sql
            .exec<{ seq: number }>("SELECT seq FROM events ORDER BY seq DESC LIMIT 1")
            .toArray()
            .map((row) => ({ id: row.seq, event: "status", data: current }));
    if (after >= 0 && backlog.length === 0 && finished) return new Response(null, { status: 204 });
    const stream = this.subscribers.subscribe(backlog, { closeAfterBacklog: finished });
    return new Response(stream, { headers: SSE_HEADERS });
  }

  /** The task reached its end: subscribers have had the terminal event. */
  closeSubscribers(): void {
    this.subscribers.closeAll();
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }
}
