/**
 * The UpstreamGate: the exact in-flight count of one upstream under hundreds of concurrent
 * acquires, its FIFO queue (bounded, drained in order as slots free), idempotent acquire and
 * release per task id, and the health circuit refusing new work while open.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { DEFAULT_HEALTH_POLICY, UpstreamHealth } from "../../src/domain/upstream-health";
import type { UpstreamGate } from "../../src/durable/upstream-gate";
import { MEDIAN_OF, SubmitTimings } from "../../src/durable/upstream-gate/submit-timings";
import { rowsCounted } from "./storage-rows";

const gate = () => env.UPSTREAM_GATES.get(env.UPSTREAM_GATES.idFromName(`ups_${crypto.randomUUID()}`));
const tasks = (n: number, prefix = "t") => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe("upstream gate", () => {
  it("hundreds of concurrent acquires never hold more than max_inflight; the rest queue in order", async () => {
    const stub = gate();
    const ids = tasks(300);
    const results = await Promise.all(
      ids.map((id) => stub.acquire(id, { maxInflight: 10, queueBound: 1000 })),
    );
    const granted = results.filter((r) => "granted" in r);
    const queued = results.filter((r) => "queued" in r);
    expect(granted).toHaveLength(10);
    expect(queued).toHaveLength(290);
    expect(queued.map((r) => ("queued" in r ? r.position : 0)).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 290 }, (_, i) => i + 1),
    );
    expect(await stub.status()).toMatchObject({ inflight: 10, queued: 290 });
  });

  it("counts each tenant's waiting tasks apart: past its bound a tenant is refused, others still queue", async () => {
    const stub = gate();
    await stub.acquire("holder", { maxInflight: 1, queueBound: 10 });
    const ask = (id: string, tenantId: string) =>
      stub.acquire(id, { maxInflight: 1, queueBound: 10, tenantId, tenantQueueBound: 2 });
    expect(await ask("a1", "ten_a")).toEqual({ queued: true, position: 1 });
    expect(await ask("a2", "ten_a")).toEqual({ queued: true, position: 2 });
    expect(await ask("a3", "ten_a")).toEqual({ refused: "tenant_queue_full" });
    expect(await ask("b1", "ten_b")).toEqual({ queued: true, position: 3 });
    expect(await stub.status("ten_a")).toMatchObject({ queued: 3, queuedForTenant: 2 });
    await stub.release("a1");
    expect(await ask("a3", "ten_a")).toEqual({ queued: true, position: 3 });
  });

  it("a release hands the slot to the oldest waiting task, in FIFO order", async () => {
    const stub = gate();
    for (const id of tasks(5)) await stub.acquire(id, { maxInflight: 2, queueBound: 10 });
    expect(await stub.release("t0")).toEqual({ released: true, granted: ["t2"] });
    expect(await stub.release("t1")).toEqual({ released: true, granted: ["t3"] });
    expect(await stub.acquire("t4", { maxInflight: 2, queueBound: 10 })).toEqual({
      queued: true,
      position: 1,
    });
    expect(await stub.release("t2")).toEqual({ released: true, granted: ["t4"] });
    expect(await stub.status()).toMatchObject({ inflight: 2, queued: 0 });
  });

  it("release twice is one release; acquire twice is one slot", async () => {
    const stub = gate();
    await stub.acquire("a", { maxInflight: 1, queueBound: 10 });
    expect(await stub.acquire("a", { maxInflight: 1, queueBound: 10 })).toEqual({ granted: true });
    await stub.acquire("b", { maxInflight: 1, queueBound: 10 });
    expect(await stub.acquire("b", { maxInflight: 1, queueBound: 10 })).toEqual({
      queued: true,
      position: 1,
    });
    expect(await stub.release("a")).toEqual({ released: true, granted: ["b"] });
    expect(await stub.release("a")).toEqual({ released: false, granted: [] });
    expect(await stub.status()).toMatchObject({ inflight: 1, queued: 0 });
  });

  it("concurrent duplicate releases free one slot only", async () => {
    const stub = gate();
    for (const id of tasks(3)) await stub.acquire(id, { maxInflight: 2, queueBound: 10 });
    const results = await Promise.all(Array.from({ length: 20 }, () => stub.release("t0")));
    expect(results.filter((r) => r.released)).toHaveLength(1);
    expect(results.flatMap((r) => r.granted)).toEqual(["t2"]);
    expect(await stub.status()).toMatchObject({ inflight: 2, queued: 0 });
  });

  it("refuses past the queue bound, or when told not to queue; a waiting task can leave the queue", async () => {
    const stub = gate();
    await stub.acquire("a", { maxInflight: 1, queueBound: 1 });
    expect(await stub.acquire("b", { maxInflight: 1, queueBound: 1, queue: false })).toEqual({
      refused: "full",
    });
    expect(await stub.acquire("b", { maxInflight: 1, queueBound: 1 })).toEqual({ queued: true, position: 1 });
    expect(await stub.acquire("c", { maxInflight: 1, queueBound: 1 })).toEqual({ refused: "queue_full" });
    expect(await stub.release("b")).toEqual({ released: true, granted: [] });
    expect(await stub.status()).toMatchObject({ inflight: 1, queued: 0 });
  });

  it("a raised cap lets waiting tasks in, oldest first, before any newcomer", async () => {
    const stub = gate();
    for (const id of tasks(4)) await stub.acquire(id, { maxInflight: 1, queueBound: 10 });
    expect(await stub.acquire("new", { maxInflight: 3, queueBound: 10 })).toEqual({
      queued: true,
      position: 2,
    });
    expect(await stub.acquire("t1", { maxInflight: 3, queueBound: 10 })).toEqual({ granted: true });
    expect(await stub.acquire("t2", { maxInflight: 3, queueBound: 10 })).toEqual({ granted: true });
  });

  it("an open circuit refuses new work and logs upstream.unhealthy once", async () => {
    const stub = gate();
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    const transitions = [];
    for (let i = 0; i < DEFAULT_HEALTH_POLICY.minSamples; i++) {
      transitions.push(...(await stub.record("ups_x", { kind: "error", message: "502" })));
    }
    log.mockRestore();
    expect(transitions.map((t) => t.type)).toEqual(["upstream.unhealthy"]);
    expect(await stub.acquire("a", { maxInflight: 5, queueBound: 10 })).toEqual({ refused: "circuit_open" });
    expect(await stub.status()).toMatchObject({
      circuit: "open",
      admitting: false,
      lastError: "502",
      inflight: 0,
    });
  });

  it("an acquire and a release read a bounded number of rows however many tasks hold slots", async () => {
    const reads = await runInDurableObject(gate(), (object, state) => {
      const instance = object as unknown as UpstreamGate;
      for (const id of tasks(1_000)) instance.acquire(id, { maxInflight: 2_000, queueBound: 0 });
      const rows = rowsCounted(state.storage);
      expect(instance.acquire("newcomer", { maxInflight: 2_000, queueBound: 0 })).toEqual({ granted: true });
      expect(instance.release("newcomer")).toEqual({ released: true, granted: [] });
      expect(instance.status()).toMatchObject({ inflight: 1_000, queued: 0 });
      return rows().rowsRead;
    });
    expect(reads).toBeLessThan(20);
  });

  it("writes a closed circuit's successes at most once a second, an error at once", async () => {
    await runInDurableObject(gate(), (object, state) => {
      const instance = object as unknown as UpstreamGate;
      const rows = rowsCounted(state.storage);
      const stored = () =>
        JSON.parse(
          state.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'health'").one()
            .value,
        );
      instance.record("ups_s", { kind: "ok" });
      const oneSave = rows().rowsWritten;
      expect(oneSave).toBeGreaterThan(0);
      // workerd's clock stands still here: all in one moment, so none is written again.
      for (let i = 0; i < 19; i++) instance.record("ups_s", { kind: "ok" });
      expect(rows().rowsWritten).toBe(oneSave);
      instance.record("ups_s", { kind: "error", message: "boom" });
      expect(stored().lastError).toBe("boom");
      // The snapshot written with the error holds every success before it.
      const { samples, errors } = instance.status().window;
      expect({ samples, errors }).toEqual({ samples: 21, errors: 1 });
      expect(new UpstreamHealth(DEFAULT_HEALTH_POLICY, Date.now, stored()).window()).toEqual({
        samples: 21,
        errors: 1,
      });
    });
  });

  it("keeps the median of its last 100 submits and counts the window's submits past them", async () => {
    const stub = gate();
    for (let ms = 1; ms <= 150; ms++) {
      await stub.record("ups_t", ms % 10 === 0 ? { kind: "error" } : { kind: "ok" }, {
        ms,
        ok: ms % 10 !== 0,
      });
    }
    const { submits } = await stub.report();
    // The last 100 are 51..150: their lower median is 100.
    expect(submits).toEqual({ inWindow: 150, failedInWindow: 15, p50Ms: 100 });
    const rows = await runInDurableObject(
      stub,
      (_: unknown, state) =>
        state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM submit_timings").one().n,
    );
    expect(rows).toBe(150);
  });

  it("a submit's bookkeeping reads a bounded number of rows however busy the window is", async () => {
    const stub = gate();
    const reads = await runInDurableObject(stub, (_: unknown, state) => {
      const timings = new SubmitTimings(state.storage.sql);
      const windowMs = DEFAULT_HEALTH_POLICY.windowMs;
      for (let i = 0; i < 3_000; i++) timings.add({ ms: 5, ok: true }, 1_000 + i, windowMs);
      const rows = rowsCounted(state.storage);
      timings.add({ ms: 5, ok: true }, 4_000, windowMs);
      return rows().rowsRead;
    });
    // 3,000 submits inside one window: none is deleted, and none should be read to find that out.
    expect(reads).toBeLessThan(MEDIAN_OF);
  });

  it("numbers submits in a sequence its deletes never reset, without a sqlite_sequence write per submit", async () => {
    const stub = gate();
    await runInDurableObject(stub, (_: unknown, state) => {
      const sql = state.storage.sql;
      const timings = new SubmitTimings(sql);
      const windowMs = DEFAULT_HEALTH_POLICY.windowMs;
      const total = MEDIAN_OF + 50;
      for (let i = 0; i < total; i++) timings.add({ ms: 5, ok: true }, 1_000 + i, windowMs);
      // Far past the window: every row but the last MEDIAN_OF (with the new one) goes.
      timings.add({ ms: 5, ok: true }, 1_000 + windowMs * 2, windowMs);
      const span = sql
        .exec<{ first: number; last: number }>(
          "SELECT MIN(seq) AS first, MAX(seq) AS last FROM submit_timings",
        )
        .one();
      expect(span).toEqual({ first: total + 1 - MEDIAN_OF + 1, last: total + 1 });
      // The gate's queue keeps AUTOINCREMENT, so sqlite_sequence exists; the timings have no row in it.
      const sequences = sql.exec("SELECT name FROM sqlite_sequence WHERE name = 'submit_timings'").toArray();
      expect(sequences).toEqual([]);
    });
  });

  it("forgets submits older than the window once it holds more than the median needs", async () => {
    const stub = gate();
    const count = await runInDurableObject(stub, (_: unknown, state) => {
      const timings = new SubmitTimings(state.storage.sql);
      const windowMs = DEFAULT_HEALTH_POLICY.windowMs;
      for (let i = 0; i < MEDIAN_OF + 50; i++) timings.add({ ms: 5, ok: true }, 1_000 + i, windowMs);
      timings.add({ ms: 7, ok: false }, 1_000 + windowMs * 2, windowMs);
      const stats = timings.stats(1_000 + windowMs * 2, windowMs);
      expect(stats).toEqual({ inWindow: 1, failedInWindow: 1, p50Ms: 5 });
      return state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM submit_timings").one().n;
    });
    expect(count).toBe(MEDIAN_OF);
  });
});
