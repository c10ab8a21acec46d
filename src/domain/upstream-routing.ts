/**
 * Which upstream takes a new task: pure, so the policy is tested apart from the Durable
 * Objects that hold the live counts. Among the members that are enabled, let traffic through
 * (their circuit, see ./upstream-health.ts), serve the action and have room under their cap,
 * the best (lowest) priority wins; within it, a member is drawn with probability
 * proportional to its weight. Failover asks again without the members already tried, so the
 * order of tries obeys the same rules (priority first) as the first pick.
 */

/** One pool member as routing sees it at the moment of the pick. */
export interface PoolMember {
  id: string;
  /** 1–1000: the share of traffic among members of the same priority. */
  weight: number;
  /** Lower is tried first. */
  priority: number;
  maxInflight: number;
  /** Our tasks open on it now (queued ones excluded). */
  inflight: number;
  enabled: boolean;
  /** The actions it serves; null serves every action. */
  actions: readonly string[] | null;
  /** Its circuit lets a new request through now (closed, or half-open with a probe slot). */
  admitting: boolean;
}

/** A number in [0, 1), like Math.random; injected so tests can make picks repeatable. */
export type RandomSource = () => number;

/** Could take this action at all, room aside: full members are waited for, the others are not. */
export function isEligible(member: PoolMember, action: string): boolean {
  return member.enabled && member.admitting && (member.actions === null || member.actions.includes(action));
}

export const hasRoom = (member: PoolMember) => member.inflight < member.maxInflight;

/**
 * The member a request for `action` goes to, or null when none can take it now (then
 * `pickQueue` names where to wait, or null when no member can serve it at all).
 * `exclude` holds the members already tried by this request.
 */
export function pickUpstream(
  members: readonly PoolMember[],
  action: string,
  random: RandomSource = Math.random,
  exclude: ReadonlySet<string> = new Set(),
): PoolMember | null {
  return bestByWeight(
    members.filter((m) => !exclude.has(m.id) && isEligible(m, action) && hasRoom(m)),
    random,
  );
}

/** A weighted draw among the candidates of the best (lowest) priority. */
function bestByWeight(candidates: readonly PoolMember[], random: RandomSource): PoolMember | null {
  if (candidates.length === 0) return null;
  const best = Math.min(...candidates.map((m) => m.priority));
  return drawByWeight(
    candidates.filter((m) => m.priority === best),
    random,
  );
}

/** Every member that would serve `action` if it had room: a full pool queues, an empty one refuses. */
export const anyEligible = (members: readonly PoolMember[], action: string) =>
  members.some((m) => isEligible(m, action));

/**
 * Where a task waits when every eligible member is full: drawn by weight among the eligible
 * members of the best priority, as a pick would be if they had room; null when none is eligible.
 */
export function pickQueue(
  members: readonly PoolMember[],
  action: string,
  random: RandomSource = Math.random,
): PoolMember | null {
  return bestByWeight(
    members.filter((m) => isEligible(m, action)),
    random,
  );
}

/** The order a request tries members in, the first pick first: each next try is a fresh pick. */
export function failoverOrder(
  members: readonly PoolMember[],
  action: string,
  random: RandomSource = Math.random,
): PoolMember[] {
  const tried = new Set<string>();
  const order: PoolMember[] = [];
  for (let next = pickUpstream(members, action, random, tried); next; ) {
    order.push(next);
    tried.add(next.id);
    next = pickUpstream(members, action, random, tried);
  }
  return order;
}

function drawByWeight(candidates: readonly PoolMember[], random: RandomSource): PoolMember {
  const total = candidates.reduce((sum, m) => sum + m.weight, 0);
  let point = random() * total;
  for (const member of candidates) {
    point -= member.weight;
    if (point < 0) return member;
  }
  // random() returned (close to) 1: floating point leaves the point at the very end.
  return candidates.at(-1)!;
}
