/**
 * Server-Sent Events fan-out inside a Durable Object.
 *
 * Each subscriber is a ReadableStream whose controller we enqueue into. enqueue() never
 * waits, so a dead or slow client can neither hang the object nor hold up the others
 * (an awaited write to a dead stream never resolves in workerd). A subscriber is treated
 * as stalled and dropped when its queue grows past a limit, or when it has read nothing
 * for a whole heartbeat interval although bytes were waiting: workerd does not report a
 * client that hung up (the stream's cancel never runs), so this is how a dead client is
 * noticed and let go instead of piling up queued bytes and keeping the object awake. A
 * live client drains its queue as soon as bytes arrive; a dropped one reconnects with
 * Last-Event-ID and replays from the durable log. Nothing here drives billing.
 *
 * Stalls are not the whole story: workerd sometimes keeps reading a stream whose client
 * has gone and discards the bytes, and such a subscriber looks exactly like a live reader.
 * So every stream also ends, cleanly, at the first heartbeat after it is STREAM_MAX_AGE_MS
 * old, plus up to STREAM_MAX_AGE_JITTER_MS so that streams opened together do not all
 * reconnect at the same beat. A live client reconnects (`retry: 2000`) with Last-Event-ID
 * and misses nothing (a browser on a stream token mints a fresh token first); a dead one
 * is gone for good. That bounds what a vanished client can hold.
 */

import { logEvent } from "../log";

export interface SseEvent {
  id: number;
  event: string;
  data: unknown;
}

const encoder = new TextEncoder();
export const HEARTBEAT_MS = 15_000;
/** A stream ends at the first heartbeat past this age; its client reconnects and resumes. */
export const STREAM_MAX_AGE_MS = 10 * 60_000;
/** Up to this much is added to each stream's age at random, so streams opened together do not all reconnect together. */
export const STREAM_MAX_AGE_JITTER_MS = 2 * 60_000;
/** Bytes queued for one subscriber before it counts as stalled. */
const MAX_QUEUED_BYTES = 1 << 20;

export function formatSse(event: SseEvent): Uint8Array {
  return encoder.encode(`id: ${event.id}\nevent: ${event.event}\ndata: ${JSON.stringify(event.data)}\n\n`);
}

interface Subscriber {
  controller: ReadableStreamDefaultController<Uint8Array>;
  filter: (event: SseEvent) => boolean;
  /** Bytes waiting in its queue at the last heartbeat, and bytes enqueued since. */
  queuedAtBeat: number;
  sentSinceBeat: number;
  /** Its age limit: Date.now() at subscribe + the maximum age + its share of the jitter. */
  endsAt: number;
}

export interface BroadcasterOptions {
  heartbeatMs?: number;
  maxAgeJitterMs?: number;
  maxQueuedBytes?: number;
}

export class SseBroadcaster {
  private readonly subscribers = new Set<Subscriber>();
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private readonly heartbeatMs: number;
  private readonly maxAgeJitterMs: number;
  private readonly maxQueuedBytes: number;

  constructor(options: BroadcasterOptions = {}) {
    this.heartbeatMs = options.heartbeatMs ?? HEARTBEAT_MS;
    this.maxAgeJitterMs = options.maxAgeJitterMs ?? STREAM_MAX_AGE_JITTER_MS;
    this.maxQueuedBytes = options.maxQueuedBytes ?? MAX_QUEUED_BYTES;
  }

  get size(): number {
    return this.subscribers.size;
  }

  /**
   * A new stream that first receives `backlog`, then every broadcast event that passes
   * `filter`. With `closeAfterBacklog` it ends right after the backlog (a finished task).
   */
  subscribe(
    backlog: SseEvent[],
    options: { filter?: (e: SseEvent) => boolean; closeAfterBacklog?: boolean } = {},
  ) {
    let subscriber: Subscriber | null = null;
    const stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          controller.enqueue(encoder.encode(": connected\nretry: 2000\n\n"));
          for (const event of backlog) controller.enqueue(formatSse(event));
          if (options.closeAfterBacklog) {
            controller.close();
            return;
          }
          subscriber = {
            controller,
            filter: options.filter ?? (() => true),
            queuedAtBeat: 0,
            sentSinceBeat: 0,
            endsAt: Date.now() + STREAM_MAX_AGE_MS + Math.floor(Math.random() * this.maxAgeJitterMs),
          };
          this.subscribers.add(subscriber);
          this.startHeartbeat();
        },
        cancel: () => {
          if (subscriber) this.drop(subscriber);
        },
      },
      { highWaterMark: this.maxQueuedBytes, size: (chunk) => chunk.byteLength },
    );
    return stream;
  }

  /**
   * Enqueues the event to every subscriber, then logs (`sse_broadcast`, with `context`) how
   * many it reached and how long the object's turn took: the Workers clock stands still while
   * code runs, so the time is read at the next turn, an upper bound of the enqueue loop. It
   * is the in-object part of a subscriber's latency; the rest is delivery and the client.
   */
  broadcast(event: SseEvent, context: Record<string, unknown> = {}): void {
    if (this.subscribers.size === 0) return;
    const started = Date.now();
    const bytes = formatSse(event);
    let reached = 0;
    for (const subscriber of this.subscribers) {
      if (subscriber.filter(event)) {
        this.send(subscriber, bytes);
        reached++;
      }
    }
    setTimeout(() => {
      logEvent("sse_broadcast", {
        ...context,
        seq: event.id,
        subscribers: reached,
        bytes: bytes.byteLength,
        turn_ms: Date.now() - started,
      });
    }, 0);
  }

  /** Ends every stream (after the terminal event). */
  closeAll(): void {
    for (const subscriber of [...this.subscribers]) this.close(subscriber);
  }

  /**
   * One heartbeat (at `now`): ends every stream past its maximum age, drops every subscriber
   * that has read nothing since the last beat although bytes were waiting for it, and sends
   * the others a `: ping` comment.
   */
  beat(now: number = Date.now()): void {
    const ping = encoder.encode(": ping\n\n");
    for (const subscriber of [...this.subscribers]) {
      if (now >= subscriber.endsAt) {
        this.close(subscriber);
        continue;
      }
      const room = subscriber.controller.desiredSize;
      const queued = room === null ? Number.POSITIVE_INFINITY : this.maxQueuedBytes - room;
      if (subscriber.queuedAtBeat > 0 && queued >= subscriber.queuedAtBeat + subscriber.sentSinceBeat) {
        this.kill(subscriber);
        continue;
      }
      subscriber.queuedAtBeat = queued;
      subscriber.sentSinceBeat = 0;
      this.send(subscriber, ping);
    }
  }

  private send(subscriber: Subscriber, bytes: Uint8Array): void {
    try {
      const room = subscriber.controller.desiredSize;
      if (room === null || room <= 0) throw new Error("subscriber stalled");
      subscriber.controller.enqueue(bytes);
      subscriber.sentSinceBeat += bytes.byteLength;
    } catch {
      this.kill(subscriber);
    }
  }

  private close(subscriber: Subscriber): void {
    try {
      subscriber.controller.close();
    } catch {}
    this.drop(subscriber);
  }

  /** Ends a stalled or broken subscriber's stream with an error; the client reconnects and resumes. */
  private kill(subscriber: Subscriber): void {
    try {
      subscriber.controller.error(new Error("dropped"));
    } catch {}
    this.drop(subscriber);
  }

  private drop(subscriber: Subscriber): void {
    this.subscribers.delete(subscriber);
    if (this.subscribers.size === 0 && this.heartbeat !== null) {
      clearInterval(this.heartbeat);
      this.heartbeat = null;
    }
  }

  private startHeartbeat(): void {
    if (this.heartbeat !== null) return;
    this.heartbeat = setInterval(() => this.beat(), this.heartbeatMs);
  }
}

export const SSE_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no",
} as const;

/** Last-Event-ID from the header (EventSource reconnects) or the query (first connect from a page). */
export function lastEventId(request: Request): number {
  const url = new URL(request.url);
  const raw =
    request.headers.get("last-event-id") ??
    url.searchParams.get("last_event_id") ??
    url.searchParams.get("after");
  const parsed = Number.parseInt(raw ?? "", 10);
  return Number.isFinite(parsed) && parsed >= 0 ? parsed : -1;
}
