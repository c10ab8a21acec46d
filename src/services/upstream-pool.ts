/**
 * The pool as routing and forwarding need it: each member's live state (from its
 * UpstreamGate) in the shape src/domain/upstream-routing.ts picks from, and a member's URL
 * and clear key for a request (the default member's from the environment, the others'
 * unsealed under UPSTREAM_KEY_SECRET). Keys go from here to the upstream request only.
 */
import { cachedUpstreams, DEFAULT_UPSTREAM_ID, type UpstreamRow } from "../db/upstreams";
import { ApiError } from "../domain/errors";
import { openKey } from "../domain/upstream-crypto";
import {
  anyEligible,
  failoverOrder,
  hasRoom,
  isEligible,
  type PoolMember,
  pickQueue,
  type RandomSource,
} from "../domain/upstream-routing";
import { configFrom, type Env } from "../env";
import { gateOf, upstreamKeySecret } from "./upstreams";

export { gateOf };

/** A member with its queue: all tasks waiting on it, and the asking tenant's. */
export type QueuedMember = PoolMember & { queued: number; queuedForTenant: number };

export interface UpstreamCredentials {
  baseUrl: string;
  apiKey: string;
}

/**
 * Every member with its live in-flight count, queue and circuit, one gate call each (a pool
 * is small); `tenantId` also counts that tenant's tasks waiting on each member.
 */
export async function poolMembers(env: Env, tenantId?: string): Promise<QueuedMember[]> {
  const rows = await cachedUpstreams(env.DB);
  return Promise.all(
    rows.map(async (row) => {
      const status = await gateOf(env, row.id).status(tenantId);
      return {
        ...memberOf(row, status.inflight, status.admitting),
        queued: status.queued,
        queuedForTenant: status.queuedForTenant,
      };
    }),
  );
}

/** The cap a member's gate enforces now (0 for a member no longer in the pool: it takes nobody). */
export async function memberCap(env: Env, upstreamId: string): Promise<number> {
  const row = (await cachedUpstreams(env.DB)).find((member) => member.id === upstreamId);
  return row?.max_inflight ?? 0;
}

export function memberOf(row: UpstreamRow, inflight: number, admitting: boolean): PoolMember {
  return {
    id: row.id,
    weight: row.weight,
    priority: row.priority,
    maxInflight: row.max_inflight,
    inflight,
    enabled: row.enabled === 1,
    actions: row.actions === null ? null : JSON.parse(row.actions),
    admitting,
  };
}

/**
 * Where and with which key to reach a member, disabled ones included (their tasks keep
 * polling them); null when there is no such member.
 */
export async function upstreamCredentials(env: Env, upstreamId: string): Promise<UpstreamCredentials | null> {
  const config = configFrom(env);
  if (upstreamId === DEFAULT_UPSTREAM_ID) {
    return { baseUrl: config.upstreamBaseUrl, apiKey: config.upstreamApiKey };
  }
  const row = (await cachedUpstreams(env.DB)).find((member) => member.id === upstreamId) ?? null;
  if (!row) return null;
  const apiKey = await openKey(upstreamKeySecret(env), row.id, {
    ciphertext: row.api_key_ciphertext!,
    iv: row.api_key_iv!,
  });
  return { baseUrl: row.base_url!, apiKey };
}

/** A member a task may be forwarded to, with the cap its gate enforces. */
export interface RouteCandidate {
  id: string;
  maxInflight: number;
  /** Its circuit is not asked: it is the pool's only enabled member (see `circuitsApply`). */
  ignoreCircuit: boolean;
}

/**
 * A circuit exists to move traffic to other members; with one enabled member there is
 * nowhere to move it, and refusing at the gateway would only turn a possible success into
 * a certain failure, so a pool of one routes as if its circuit were closed.
 */
const circuitsApply = (members: readonly PoolMember[]) => members.filter((m) => m.enabled).length > 1;

/** The queue bounds a task is held to, per member's gate (src/env.ts). */
export interface QueueBounds {
  /** Most tasks waiting on one member. */
  max: number;
  /** Most of one tenant's tasks waiting on one member. */
  perTenant: number;
}

export const queueBoundsOf = (env: Env): QueueBounds => {
  const config = configFrom(env);
  return { max: config.upstreamQueueMax, perTenant: config.upstreamQueueMaxPerTenant };
};

/** Its queue (and the tenant's share of it) has room for one more task, as the gate counted a moment ago. */
const canWait = (member: QueuedMember, bounds: QueueBounds) =>
  member.queued < bounds.max && member.queuedForTenant < bounds.perTenant;

/**
 * Where a submit may go, decided before admission so a refusal charges nothing: a new task's
 * members in failover order (priority, room, weight), or a follow-up's parent member alone;
 * when every eligible member is full, the member it will wait on (whose queue, overall and
 * the tenant's share, has room). The gates' counts may move before the task asks for its slot
 * or its place; the gate enforces the cap and the queue bounds exactly, and a task refused
 * there after admission is refunded.
 */
export async function routeFor(
  env: Env,
  action: string,
  parentUpstreamId: string | null,
  { tenantId, random = Math.random }: { tenantId?: string; random?: RandomSource } = {},
): Promise<RouteCandidate[]> {
  const pool = await poolMembers(env, tenantId);
  const bounds = queueBoundsOf(env);
  const ignoreCircuit = !circuitsApply(pool);
  const members = ignoreCircuit ? pool.map((m) => ({ ...m, admitting: true })) : pool;
  if (parentUpstreamId !== null) return [parentRoute(members, parentUpstreamId, ignoreCircuit, bounds)];
  const toCandidate = ({ id, maxInflight }: PoolMember) => ({ id, maxInflight, ignoreCircuit });
  const order = failoverOrder(members, action, random);
  const waitable = members.filter((m) => canWait(m, bounds));
  // After the members with room, the full ones a task may wait on: a task every member with
  // room refused clearly, or that lost the race for their slots, waits there instead.
  const queue = pickQueue(waitable, action, random);
  const others = waitable
    .filter((m) => m.id !== queue?.id && isEligible(m, action) && !order.some((o) => o.id === m.id))
    .sort((a, b) => a.priority - b.priority);
  const queues = queue && !order.some((o) => o.id === queue.id) ? [queue, ...others] : others;
  if (order.length || queues.length) return [...order, ...queues].map(toCandidate);
  if (anyEligible(members, action))
    throw upstreamBusy("every upstream is at capacity and its queue is full; retry shortly");
  throw new ApiError("upstream_unavailable", `no upstream can take a ${action} task now`);
}

/** Follow-ups are sticky: the parent's upstream made its job, so only it can continue it (or queue there). */
function parentRoute(
  members: readonly QueuedMember[],
  upstreamId: string,
  ignoreCircuit: boolean,
  bounds: QueueBounds,
): RouteCandidate {
  const member = members.find((m) => m.id === upstreamId);
  if (!member || !isAvailable(member)) throw parentUpstreamUnavailable();
  if (!hasRoom(member) && !canWait(member, bounds))
    throw upstreamBusy("the parent task's upstream is at capacity and its queue is full; retry shortly");
  return { id: upstreamId, maxInflight: member.maxInflight, ignoreCircuit };
}

const isAvailable = (member: PoolMember) => member.enabled && member.admitting;

/** Whether a task's member takes requests now (a /modal continues only there). */
export async function memberAvailable(env: Env, upstreamId: string): Promise<boolean> {
  const pool = await poolMembers(env);
  const member = pool.find((m) => m.id === upstreamId);
  return member?.enabled === true && (member.admitting || !circuitsApply(pool));
}

export const parentUpstreamUnavailable = () =>
  new ApiError(
    "parent_upstream_unavailable",
    "the upstream that ran the parent task is unavailable now; nothing was charged, retry later",
    { field: "task_id" },
  );

const upstreamBusy = (message: string) =>
  new ApiError("upstream_busy", message, { headers: { "Retry-After": "5" } });
