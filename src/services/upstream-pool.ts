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
  type PoolMember,
  type RandomSource,
} from "../domain/upstream-routing";
import { configFrom, type Env } from "../env";
import { gateOf, upstreamKeySecret } from "./upstreams";

export { gateOf };

export interface UpstreamCredentials {
  baseUrl: string;
  apiKey: string;
}

/** Every member with its live in-flight count and circuit, one gate call each (a pool is small). */
export async function poolMembers(env: Env): Promise<PoolMember[]> {
  const rows = await cachedUpstreams(env.DB);
  return Promise.all(
    rows.map(async (row) => {
      const status = await gateOf(env, row.id).status();
      return memberOf(row, status.inflight, status.admitting);
    }),
  );
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

/**
 * Where a submit may go, decided before admission so a refusal charges nothing: a new task's
 * members in failover order (priority, room, weight), or a follow-up's parent member alone.
 * The gates' counts may move before the task acquires its slot; the task then tries the
 * next candidate and, with none left, is refused and refunded.
 */
export async function routeFor(
  env: Env,
  action: string,
  parentUpstreamId: string | null,
  random: RandomSource = Math.random,
): Promise<RouteCandidate[]> {
  const pool = await poolMembers(env);
  const ignoreCircuit = !circuitsApply(pool);
  const members = ignoreCircuit ? pool.map((m) => ({ ...m, admitting: true })) : pool;
  if (parentUpstreamId !== null) return [parentRoute(members, parentUpstreamId, ignoreCircuit)];
  const order = failoverOrder(members, action, random);
  if (order.length) return order.map(({ id, maxInflight }) => ({ id, maxInflight, ignoreCircuit }));
  if (anyEligible(members, action)) throw upstreamBusy("every upstream is at capacity; retry shortly");
  throw new ApiError("upstream_unavailable", `no upstream can take a ${action} task now`);
}

/** Follow-ups are sticky: the parent's upstream made its job, so only it can continue it. */
function parentRoute(
  members: readonly PoolMember[],
  upstreamId: string,
  ignoreCircuit: boolean,
): RouteCandidate {
  const member = members.find((m) => m.id === upstreamId);
  if (!member || !isAvailable(member)) throw parentUpstreamUnavailable();
  if (!hasRoom(member)) throw upstreamBusy("the parent task's upstream is at capacity; retry shortly");
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
