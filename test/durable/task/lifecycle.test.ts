import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { TaskMeta } from "../../../src/domain/task-view";
import { TaskClock } from "../../../src/durable/task/clock";
import { type LifecycleHooks, TaskLifecycle, type TaskRecord } from "../../../src/durable/task/lifecycle";
import { TaskSchema } from "../../../src/durable/task/storage-schema";
import type { TaskObject } from "../../../src/durable/task-object";
import { configFrom } from "../../../src/env";
import { admittedTask } from "../../db/money-helpers";
import { tenantWithKey } from "../../helpers";

const PRICE = 54_048;

/** Counts the record reads a piece of work makes. */
function countingStorage(storage: DurableObjectStorage) {
  const counter = { recordReads: 0 };
  const sql = new Proxy(storage.sql, {
    get(target, property) {
      if (property !== "exec") return Reflect.get(target, property);
      return (query: string, ...bindings: unknown[]) => {
        if (query.startsWith("SELECT body FROM record")) counter.recordReads++;
        return target.exec(query, ...bindings);
      };
    },
  });
  const counted = new Proxy(storage, {
    get(target, property) {
      if (property === "sql") return sql;
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { storage: counted, counter };
}

function recordingHooks() {
  const seen = { changes: [] as number[], ended: 0, armed: 0, polls: 0 };
  const hooks: LifecycleHooks = {
    changed: (at) => void seen.changes.push(at),
    ended: () => void seen.ended++,
    arm: () => void seen.armed++,
    poll: async () => void seen.polls++,
  };
  return { hooks, seen };
}

const metaOf = (t: { tenantId: string; keyId: string }, taskId: string): TaskMeta => ({
  taskId,
  tenantId: t.tenantId,
  keyId: t.keyId,
  action: "imagine",
  parentTaskId: null,
  upstreamParentId: null,
  upstreamTaskId: "up-1",
  costMicros: PRICE,
  prompt: "a fox",
  metadata: null,
});

function withLifecycle<T>(
  run: (parts: {
    lifecycle: TaskLifecycle;
    clock: TaskClock;
    seen: ReturnType<typeof recordingHooks>["seen"];
    counter: { recordReads: number };
  }) => Promise<T>,
) {
  const stub = env.TASKS.get(env.TASKS.idFromName(`lifecycle-${crypto.randomUUID()}`));
  return runInDurableObject(stub, (_o: TaskObject, state) => {
    const clock = new TaskClock();
    const { storage, counter } = countingStorage(state.storage);
    const { hooks, seen } = recordingHooks();
    const lifecycle = new TaskLifecycle(
      storage,
      new TaskSchema(storage),
      env.DB,
      clock,
      configFrom(env),
      hooks,
    );
    return run({ lifecycle, clock, seen, counter });
  });
}

describe("TaskLifecycle", () => {
  it("writes a record only when it changed, and keeps memory at what storage holds when a write fails", async () => {
    const t = await tenantWithKey();
    const taskId = await admittedTask(t, PRICE);
    await withLifecycle(async ({ lifecycle, clock }) => {
      lifecycle.create({ meta: metaOf(t, taskId), submitOutcome: null }, clock.now() + 1_000, clock.now());
      const stored = lifecycle.record()!;
      // SQLite refuses a row past its size limit: the change is not taken, in storage or in memory.
      const huge = { ...stored.meta.metadata, blob: "x".repeat(3 * 1024 * 1024) };
      expect(() => lifecycle.update((r) => ({ ...r, meta: { ...r.meta, metadata: huge } }))).toThrow();
      expect(lifecycle.record()).toEqual(stored);
      lifecycle.reload();
      expect(lifecycle.record()).toEqual(stored);
    });
  });

  it("reads and parses the record once, then only after reload(): memory follows every write", async () => {
    const t = await tenantWithKey();
    const taskId = await admittedTask(t, PRICE);
    await withLifecycle(async ({ lifecycle, clock, counter }) => {
      expect(lifecycle.record()).toBeNull();
      lifecycle.create({ meta: metaOf(t, taskId), submitOutcome: null }, clock.now() + 1_000, clock.now());
      counter.recordReads = 0;
      for (let i = 0; i < 10; i++) expect(lifecycle.record()?.meta.taskId).toBe(taskId);
      lifecycle.apply({ type: "accepted", at: clock.now(), upstreamStatus: "submitted" });
      lifecycle.apply({
        type: "upstream",
        at: clock.now(),
        status: "IN_PROGRESS",
        progress: 40,
        failReason: null,
        result: {},
      });
      lifecycle.update((r: TaskRecord) => ({ ...r, unpricedUpstreamJobs: 0 }));
      const inMemory = lifecycle.record();
      expect(inMemory?.state.status).toBe("IN_PROGRESS");
      expect(counter.recordReads).toBe(0);
      // Read again, storage holds exactly what memory held.
      lifecycle.reload();
      expect(lifecycle.record()).toEqual(inMemory);
      expect(counter.recordReads).toBe(1);
    });
  });

  it("publishes each change, ends once, settles through billing once, and keeps another tenant out", async () => {
    const t = await tenantWithKey();
    const taskId = await admittedTask(t, PRICE);
    await withLifecycle(async ({ lifecycle, clock, seen }) => {
      lifecycle.create({ meta: metaOf(t, taskId), submitOutcome: null }, clock.now() + 1_000, clock.now());
      await lifecycle.observe({ type: "accepted", at: clock.now(), upstreamStatus: "submitted" });
      const failed = {
        type: "upstream" as const,
        at: clock.now(),
        status: "FAILURE" as const,
        progress: 100,
        failReason: "boom",
        result: {},
      };
      await lifecycle.observe(failed);
      await lifecycle.observe(failed);
      // NOT_START when created, then FAILURE once (the duplicate report changes nothing).
      expect(seen.changes).toHaveLength(2);
      expect(seen.ended).toBe(1);
      expect(lifecycle.record()?.state.settlement?.recorded).toBe(true);
      expect(lifecycle.recordOf("someone-else")).toBeNull();
      expect(lifecycle.recordOf(t.tenantId)?.meta.taskId).toBe(taskId);
    });
    const ledger = await env.DB.prepare("SELECT kind, amount FROM ledger WHERE task_id = ?1 ORDER BY id")
      .bind(taskId)
      .all<{ kind: string; amount: number }>();
    expect(ledger.results).toEqual([
      { kind: "charge", amount: -PRICE },
      { kind: "refund", amount: PRICE },
    ]);
  });

  it("retention is due only once settled and the period is over, on the task's clock", async () => {
    const t = await tenantWithKey();
    const taskId = await admittedTask(t, PRICE);
    await withLifecycle(async ({ lifecycle, clock }) => {
      lifecycle.create({ meta: metaOf(t, taskId), submitOutcome: null }, clock.now() + 1_000, clock.now());
      expect(lifecycle.retentionAt()).toBeNull();
      await lifecycle.observe({ type: "rejected", at: clock.now(), reason: "upstream refused" });
      const retentionAt = lifecycle.retentionAt()!;
      expect(lifecycle.retentionDue(clock.now(), true)).toBe(false);
      clock.advanceTo(retentionAt);
      expect(lifecycle.retentionDue(clock.now(), false)).toBe(false); // webhooks still pending
      expect(lifecycle.retentionDue(clock.now(), true)).toBe(true);
    });
  });
});
