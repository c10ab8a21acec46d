import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ACTIONS } from "../../src/domain/actions";
import {
  failoverOrder,
  hasRoom,
  isEligible,
  type PoolMember,
  pickQueue,
  pickUpstream,
} from "../../src/domain/upstream-routing";

/**
 * The routing policy over random pools: it never picks a member that is disabled, not
 * admitting (circuit open), full or not serving the action; it always takes the best
 * priority that has room; failover follows the same rules; weights hold over many picks.
 */

const member = (id: string, overrides: Partial<PoolMember> = {}): PoolMember => ({
  id,
  weight: 100,
  priority: 0,
  maxInflight: 10,
  inflight: 0,
  enabled: true,
  actions: null,
  admitting: true,
  ...overrides,
});

const arbMember = (id: string) =>
  fc.record({
    id: fc.constant(id),
    weight: fc.integer({ min: 1, max: 1000 }),
    priority: fc.integer({ min: 0, max: 3 }),
    maxInflight: fc.integer({ min: 1, max: 5 }),
    inflight: fc.integer({ min: 0, max: 6 }),
    enabled: fc.boolean(),
    actions: fc.option(fc.subarray([...ACTIONS], { minLength: 1 }), { nil: null }),
    admitting: fc.boolean(),
  });

const arbPool = fc
  .integer({ min: 0, max: 8 })
  .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => arbMember(`u${i}`))));

const arbRandom = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const arbAction = fc.constantFrom(...ACTIONS);

describe("upstream routing", () => {
  it("never picks a disabled, non-admitting, full or action-excluded member", () => {
    fc.assert(
      fc.property(arbPool, arbAction, arbRandom, (pool, action, r) => {
        const picked = pickUpstream(pool, action, () => r);
        const usable = pool.filter((m) => isEligible(m, action) && hasRoom(m));
        expect(picked === null).toBe(usable.length === 0);
        if (!picked) return;
        expect(picked!.enabled && picked!.admitting && hasRoom(picked!)).toBe(true);
        expect(picked!.actions === null || picked!.actions.includes(action)).toBe(true);
      }),
      { numRuns: 3_000 },
    );
  });

  it("takes the lowest priority value that has room", () => {
    fc.assert(
      fc.property(arbPool, arbAction, arbRandom, (pool, action, r) => {
        const picked = pickUpstream(pool, action, () => r);
        const usable = pool.filter((m) => isEligible(m, action) && hasRoom(m));
        if (picked) expect(picked.priority).toBe(Math.min(...usable.map((m) => m.priority)));
      }),
      { numRuns: 3_000 },
    );
  });

  it("failover tries every usable member once, priorities never going back up", () => {
    fc.assert(
      fc.property(arbPool, arbAction, fc.infiniteStream(arbRandom), (pool, action, randoms) => {
        const order = failoverOrder(pool, action, () => randoms.next().value);
        const usable = pool.filter((m) => isEligible(m, action) && hasRoom(m));
        expect(order.map((m) => m.id).sort()).toEqual(usable.map((m) => m.id).sort());
        for (let i = 1; i < order.length; i++) {
          expect(order[i]!.priority).toBeGreaterThanOrEqual(order[i - 1]!.priority);
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it("queues on an eligible member of the best priority, full or not; null only when none is eligible", () => {
    fc.assert(
      fc.property(arbPool, arbAction, arbRandom, (pool, action, r) => {
        const target = pickQueue(pool, action, () => r);
        const eligible = pool.filter((m) => isEligible(m, action));
        expect(target === null).toBe(eligible.length === 0);
        if (target) expect(target.priority).toBe(Math.min(...eligible.map((m) => m.priority)));
        if (target) expect(isEligible(target, action)).toBe(true);
      }),
      { numRuns: 2_000 },
    );
  });

  it("shares traffic by weight within 3 percentage points over 5000 picks", () => {
    const pool = [member("a", { weight: 100 }), member("b", { weight: 300 }), member("c", { weight: 600 })];
    const counts = new Map<string, number>();
    const picks = 5_000;
    for (let i = 0; i < picks; i++) {
      const id = pickUpstream(pool, "imagine")!.id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    // Binomial sd at p=0.5, n=5000 is 0.7 points: 3 points is beyond 4 sd.
    expect(Math.abs(counts.get("a")! / picks - 0.1)).toBeLessThan(0.03);
    expect(Math.abs(counts.get("b")! / picks - 0.3)).toBeLessThan(0.03);
    expect(Math.abs(counts.get("c")! / picks - 0.6)).toBeLessThan(0.03);
  });

  it("spills to the next priority only when the better one is full, and excludes members tried", () => {
    const primary = member("primary", { priority: 0, maxInflight: 1 });
    const backup = member("backup", { priority: 5 });
    expect(pickUpstream([backup, primary], "imagine")!.id).toBe("primary");
    expect(pickUpstream([backup, { ...primary, inflight: 1 }], "imagine")!.id).toBe("backup");
    expect(pickUpstream([backup, primary], "imagine", Math.random, new Set(["primary"]))!.id).toBe("backup");
    expect(pickUpstream([{ ...backup, actions: ["describe"] }], "imagine")).toBeNull();
  });

  it("a random source of almost 1 still picks a member", () => {
    expect(pickUpstream([member("a"), member("b")], "imagine", () => 0.9999999999999999)!.id).toBe("b");
  });
});
