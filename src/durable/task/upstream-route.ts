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
import {
  type RequestBody,
  UpstreamClient,
  type UpstreamFailure,
  type UpstreamResult,
  type UpstreamSubmitted,
} from "../../upstream/client";

/** Where a submit went and what came back; `upstreamId` null: no member had a slot for it. */
export type RoutedSubmit =
  | { upstreamId: string; holdsSlot: boolean; result: UpstreamResult<UpstreamSubmitted> }
  | { upstreamId: null };

/**
 * The upstream clearly did not take the job, so another member may: it asked us to wait (429),
 * refused our key, or failed with a readable error body. A timeout, a cut connection or an
 * unreadable answer may hide a job already made, so those are never tried elsewhere (a
 * refused connection looks the same as a cut one to fetch, so it is treated as ambiguous too).
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
   * after a clear refusal (whose slot is given back). Without a route, the default member
   * without a gate.
   */
  async submit(
    taskId: string,
    action: string,
    body: RequestBody,
    route: RouteCandidate[] | undefined,
    /** Called with each member once its slot is held, before the request: the slot must outlive an eviction. */
    holding: (upstreamId: string) => void = () => {},
  ): Promise<RoutedSubmit> {
    if (!route) {
      const result = await (await this.client()).submit(action, body);
      return { upstreamId: DEFAULT_UPSTREAM_ID, holdsSlot: false, result };
    }
    // A stream can be sent once: with more than one member to try, a body of at most
    // REPLAYABLE_BODY_BYTES is kept to send again; a larger one (big data URIs) is sent to one
    // member only, so failover never holds tens of MiB in the object's memory.
    const { payload, replayable } =
      route.length > 1 ? await replayableBody(body) : { payload: body, replayable: false };
    let last: RoutedSubmit = { upstreamId: null };
    for (const candidate of route) {
      if (last.upstreamId !== null && !replayable) break;
      const gate = gateOf(this.env, candidate.id);
      const slot = await gate.acquire(taskId, {
        maxInflight: candidate.maxInflight,
        queueBound: 0,
        queue: false,
        ignoreCircuit: candidate.ignoreCircuit,
      });
      if (!("granted" in slot)) continue;
      holding(candidate.id);
      const client = await this.client(candidate.id);
      const started = Date.now();
      const result = await client.submit(action, payload);
      await this.record(candidate.id, result, Date.now() - started);
      last = { upstreamId: candidate.id, holdsSlot: true, result };
      if (result.ok || !failsOver(result.failure)) return last;
      await gate.release(taskId);
      last = { ...last, holdsSlot: false };
      logEvent("upstream_failover", {
        task_id: taskId,
        upstream_id: candidate.id,
        failure: result.failure.kind,
      });
    }
    if (last.upstreamId === null && typeof payload !== "string") void payload.cancel().catch(() => {});
    return last;
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

  /** Gives the task's slot back (idempotent on the gate); true once the gate answered. */
  async release(taskId: string, upstreamId: string): Promise<boolean> {
    try {
      await gateOf(this.env, upstreamId).release(taskId);
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
