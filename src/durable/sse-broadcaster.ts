/**
 * Server-Sent Events fan-out inside a Durable Object.
 *
 * Each subscriber is a ReadableStream whose controller we enqueue into. enqueue() never
 * waits, so a dead or slow client can neither hang the object nor hold up the others
 * (an awaited write to a dead stream never resolves in workerd). A subscriber whose
 * queue grows past a limit is treated as stalled and dropped: it reconnects with
 * Last-Event-ID and replays from the durable log. Nothing here drives billing.
 */

export interface SseEvent {
  id: number;
  event: string;
  data: unknown;
}

const encoder = new TextEncoder();
export const HEARTBEAT_MS = 15_000;
/** Bytes queued for one subscriber before it counts as stalled. */
const MAX_QUEUED_BYTES = 1 << 20;

export function formatSse(event: SseEvent): Uint8Array {
  return encoder.encode(`id: ${event.id}\nevent: ${event.event}\ndata: ${JSON.stringify(event.data)}\n\n`);
}

interface Subscriber {
  controller: ReadableStreamDefaultController<Uint8Array>;
  filter: (event: SseEvent) => boolean;
}

export class SseBroadcaster {
  private readonly subscribers = new Set<Subscriber>();
  private heartbeat: ReturnType<typeof setInterval> | null = null;

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
          subscriber = { controller, filter: options.filter ?? (() => true) };
          this.subscribers.add(subscriber);
          this.startHeartbeat();
        },
        cancel: () => {
          if (subscriber) this.drop(subscriber);
        },
      },
      { highWaterMark: MAX_QUEUED_BYTES, size: (chunk) => chunk.byteLength },
    );
    return stream;
  }

  broadcast(event: SseEvent): void {
    const bytes = formatSse(event);
    for (const subscriber of this.subscribers) {
      if (subscriber.filter(event)) this.send(subscriber, bytes);
    }
  }

  /** Ends every stream (after the terminal event). */
  closeAll(): void {
    for (const subscriber of [...this.subscribers]) {
      try {
        subscriber.controller.close();
      } catch {}
      this.drop(subscriber);
    }
  }

  private send(subscriber: Subscriber, bytes: Uint8Array): void {
    try {
      const room = subscriber.controller.desiredSize;
      if (room !== null && room <= 0) throw new Error("subscriber stalled");
      subscriber.controller.enqueue(bytes);
    } catch {
      try {
        subscriber.controller.error(new Error("dropped"));
      } catch {}
      this.drop(subscriber);
    }
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
    const ping = encoder.encode(": ping\n\n");
    this.heartbeat = setInterval(() => {
      for (const subscriber of this.subscribers) this.send(subscriber, ping);
    }, HEARTBEAT_MS);
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
