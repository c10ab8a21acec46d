/**
 * Which pool member a task talks to, and with which key: the submit over the route the
 * billing service planned (src/services/upstream-pool.ts `routeFor`), each try holding a
 * slot on the member's gate (src/durable/upstream-gate.ts), with failover on clear refusals
 * only; clients for polls and /modal built from the member the task remembers; every
 * outcome fed to the member's health.
 */
import { DEFAULT_UPSTREAM_ID } from "../../db/upstreams";
import type { Outcome } from "../../domain/upstream-health";
import type { Env, GatewayConfig } from "../../env";
import { logEvent } from "../../log";
import { gateOf, type RouteCandidate, upstreamCredentials } from "../../services/upstream-pool";
import { span } from "../../spans";
import {
  type RequestBody,
  UpstreamClient,
  type UpstreamFailure,
  type UpstreamResult,
  type UpstreamSubmitted,
} from "../../upstream/client";

/**
 * Where a submit went and what came back; `queued`: every member was full and the task waits
 * in `upstreamId`'s queue (its body kept by the caller); `upstreamId` null: no member had a
 * slot or a place in its queue for it.
 */
export type RoutedSubmit =
  | { upstreamId: string; holdsSlot: boolean; result: UpstreamResult<UpstreamSubmitted> }
  | { upstreamId: string; queued: { position: number } }
  | { upstreamId: null };

/** What the task does around each step of a submit, so its record is right if it is evicted mid-way. */
export interface SubmitHooks {
  /** A slot on this member is held, before the request: the slot must outlive an eviction. */
  holding?(upstreamId: string): void;
  /**
   * Every member was full: the task is about to ask for a place in this member's queue. The
   * body must be kept (and the place on record) before the gate can grant it to the task.
   */
  waiting?(upstreamId: string, body: string): void;
  /** The queue refused it after all: forget the place (and the body). */
  notWaiting?(): void;
  /** Who waits, and the queue bounds the gate holds it to; absent: a full pool refuses. */
  queue?: { tenantId: string; bound: number; tenantBound: number };
}

/**
 * The upstream clearly did not take the job, so another member may: it asked us to wait (429),
 * refused our key, or failed with a readable error body. A timeout, a cut connection or an
 * unreadable answer may hide a job already made, so those are never tried elsewhere. A refused
 * connection is one of them: workerd's fetch rejects it with the same "Network connection
 * lost." error (same properties) as a connection cut after the request was sent.
 */
export function failsOver(failure: UpstreamFailure): boolean {
  return failure.kind === "rate_limited" || failure.kind === "auth" || failure.kind === "server_error";
}

/** What a failure says about the member's health; null when it is about the request, not the member. */
export function healthOutcome(failure: UpstreamFailure): Outcome | null {
  switch (failure.kind) {
    case "rejected":
    case "not_found":
      return null;
    case "rate_limited":
      return {
        kind: "rate_limited",
        retryAfterMs: failure.retryAfterSeconds === null ? undefined : failure.retryAfterSeconds * 1000,
      };
    default:
      return { kind: "error", message: `${failure.kind}: ${failure.message}` };
  }
}

export class UpstreamRoute {
  /** One client per member this object talks to (a member's key is unsealed once per instance). */
  private readonly clients = new Map<string, Promise<UpstreamClient>>();

  constructor(
    private readonly env: Env,
    private readonly config: GatewayConfig,
  ) {}

  /** The client of a member (disabled ones included: their tasks keep polling them). */
  client(upstreamId: string = DEFAULT_UPSTREAM_ID): Promise<UpstreamClient> {
    let client = this.clients.get(upstreamId);
    if (!client) {
      client = this.newClient(upstreamId);
      client.catch(() => this.clients.delete(upstreamId));
      this.clients.set(upstreamId, client);
    }
    return client;
  }

  /**
   * Submits over the route: each member only with a slot from its gate, the next one only
   * after a clear refusal (whose slot is given back). When no member had a slot (or each one
   * that had refused clearly), the task asks for a place in a queue, in route order: granted
   * at once, it is sent there; queued, it waits for the gate to wake it. Without a route, the
   * default member without a gate.
   */
  async submit(
    taskId: string,
    action: string,
    body: RequestBody,
    route: RouteCandidate[] | undefined,
    hooks: SubmitHooks = {},
  ): Promise<RoutedSubmit> {
    if (!route) {
      const result = await (await this.client()).submit(action, body);
      return { upstreamId: DEFAULT_UPSTREAM_ID, holdsSlot: false, result };
    }
    // A stream can be sent once: a body of at most REPLAYABLE_BODY_BYTES is kept to send to
    // another member or after a wait in a queue; a larger one (big data URIs) is sent to one
    // member only and never waits, so no object holds tens of MiB.
    const { payload, replayable } =
      route.length > 1 || hooks.queue ? await replayableBody(body) : { payload: body, replayable: false };
    let last: RoutedSubmit = { upstreamId: null };
    const refusedBy = new Set<string>();
    for (const candidate of route) {
      if (last.upstreamId !== null && !replayable) break;
      const slot = await span("gate.acquire", async () =>
        gateOf(this.env, candidate.id).acquire(taskId, {
          maxInflight: candidate.maxInflight,
          queueBound: 0,
          queue: false,
          ignoreCircuit: candidate.ignoreCircuit,
        }),
      );
      if (!("granted" in slot)) continue;
      last = await this.sendHolding(taskId, candidate.id, action, payload, hooks);
      if (!("holdsSlot" in last) || last.holdsSlot) return last;
      refusedBy.add(candidate.id);
    }
    if (hooks.queue && replayable && typeof payload === "string") {
      for (const candidate of route.filter((c) => !refusedBy.has(c.id))) {
        hooks.waiting?.(candidate.id, payload);
        const place = await gateOf(this.env, candidate.id).acquire(taskId, {
          maxInflight: candidate.maxInflight,
          queueBound: hooks.queue.bound,
          tenantId: hooks.queue.tenantId,
          tenantQueueBound: hooks.queue.tenantBound,
          ignoreCircuit: candidate.ignoreCircuit,
        });
        if ("queued" in place) return { upstreamId: candidate.id, queued: { position: place.position } };
        if ("granted" in place) {
          last = await this.sendHolding(taskId, candidate.id, action, payload, hooks);
          if (!("holdsSlot" in last) || last.holdsSlot) return last;
          continue;
        }
        hooks.notWaiting?.();
        logEvent("upstream_queue_refused", {
          task_id: taskId,
          upstream_id: candidate.id,
          reason: place.refused,
        });
      }
    }
    if (last.upstreamId === null && typeof payload !== "string") void payload.cancel().catch(() => {});
    return last;
  }

  /**
   * Sends with the slot held on the member's gate; on a clear refusal the slot goes back
   * (`holdsSlot` false: the caller may try another member).
   */
  private async sendHolding(
    taskId: string,
    upstreamId: string,
    action: string,
    payload: RequestBody,
    hooks: SubmitHooks,
  ): Promise<RoutedSubmit> {
    hooks.holding?.(upstreamId);
    const client = await this.client(upstreamId);
    const started = Date.now();
    const result = await span("upstream.submit", () => client.submit(action, payload));
    const recorded = span("gate.record", () => this.record(upstreamId, result, Date.now() - started));
    // Health is advisory: a job the upstream took is answered without waiting for its record.
    // A refusal waits, so the next member (and the next submit) sees the member's new health.
    if (result.ok) return { upstreamId, holdsSlot: true, result };
    await recorded;
    if (!failsOver(result.failure)) return { upstreamId, holdsSlot: true, result };
    await this.release(taskId, upstreamId);
    logEvent("upstream_failover", { task_id: taskId, upstream_id: upstreamId, failure: result.failure.kind });
    return { upstreamId, holdsSlot: false, result };
  }

  /**
   * Feeds what a request got back to the member's health, and a submit's round trip
   * (`submitMs`) to its timings; health is advisory, so a failure here is logged.
   */
  async record(upstreamId: string, result: UpstreamResult<unknown>, submitMs?: number): Promise<void> {
    const outcome: Outcome | null = result.ok ? { kind: "ok" } : healthOutcome(result.failure);
    const submit = submitMs === undefined ? undefined : { ms: submitMs, ok: outcome?.kind !== "error" };
    if (!outcome && !submit) return;
    try {
      await gateOf(this.env, upstreamId).record(upstreamId, outcome, submit);
    } catch (error) {
      logEvent("upstream_health_unrecorded", { upstream_id: upstreamId, error: String(error) });
    }
  }

  /**
   * Gives the task's slot (or its place in the queue) back, idempotent on the gate, and wakes
   * the waiting tasks the gate handed the freed slot to; true once the gate answered.
   */
  async release(taskId: string, upstreamId: string): Promise<boolean> {
    try {
      const { granted } = await gateOf(this.env, upstreamId).release(taskId);
      await this.wake(granted, upstreamId);
      return true;
    } catch (error) {
      logEvent("upstream_slot_release_failed", {
        task_id: taskId,
        upstream_id: upstreamId,
        error: String(error),
      });
      return false;
    }
  }

  /**
   * Tells each task the gate granted a slot to; a task that misses it (unreachable, evicted)
   * finds the slot at its next alarm, which asks the gate again.
   */
  private async wake(taskIds: readonly string[], upstreamId: string): Promise<void> {
    await Promise.all(
      taskIds.map((id) =>
        this.env.TASKS.get(this.env.TASKS.idFromName(id))
          .slotGranted(id, upstreamId)
          .catch((error: unknown) =>
            logEvent("upstream_wake_failed", { task_id: id, upstream_id: upstreamId, error: String(error) }),
          ),
      ),
    );
  }

  private async newClient(upstreamId: string): Promise<UpstreamClient> {
    const credentials = await upstreamCredentials(this.env, upstreamId);
    if (!credentials) throw new Error(`upstream ${upstreamId} is not in the pool`);
    return new UpstreamClient({ ...credentials, timeoutMs: this.config.upstreamTimeoutMs });
  }
}

/** Bodies up to this size are kept to be sent to the next member after a clear refusal. */
export const REPLAYABLE_BODY_BYTES = 8 * 1024 * 1024;

/**
 * Reads a body to keep it for another try, up to `limit` bytes; past that, the bytes read so
 * far and the rest of the stream become one stream again, to be sent once.
 */
export async function replayableBody(
  body: RequestBody,
  limit = REPLAYABLE_BODY_BYTES,
): Promise<{ payload: RequestBody; replayable: boolean }> {
  if (typeof body === "string") return { payload: body, replayable: true };
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { payload: new TextDecoder().decode(concat(chunks, size)), replayable: true };
    chunks.push(value);
    size += value.byteLength;
    if (size > limit) break;
  }
  const rest = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
    },
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return { payload: rest, replayable: false };
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}
