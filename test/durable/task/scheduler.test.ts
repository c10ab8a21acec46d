import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { TaskClock } from "../../../src/durable/task/clock";
import { Scheduler } from "../../../src/durable/task/scheduler";
import type { TaskObject } from "../../../src/durable/task-object";
import { rowsCounted } from "../storage-rows";

/** A scheduler over a fresh (empty) task object's storage, with its own clock. */
function withScheduler<T>(
  run: (scheduler: Scheduler, clock: TaskClock, storage: DurableObjectStorage) => Promise<T>,
) {
  const stub = env.TASKS.get(env.TASKS.idFromName(`scheduler-${crypto.randomUUID()}`));
  return runInDurableObject(stub, async (_o: TaskObject, state) => {
    const clock = new TaskClock();
    return run(new Scheduler(state.storage, clock), clock, state.storage);
  });
}

describe("Scheduler", () => {
  it("arms the single alarm for the earliest timer, on the task's clock, never in the past", async () => {
    await withScheduler(async (scheduler, clock, storage) => {
      const now = clock.now();
      scheduler.armAtEarliest([now + 60_000, null, now + 5_000, now + 3_600_000]);
      expect(await scheduler.armedFor()).toBe(now + 5_000);
      expect(await storage.getAlarm()).toBe(now + 5_000);
      const before = clock.now();
      scheduler.armAtEarliest([before - 1_000]);
      expect(await scheduler.armedFor()).toBeGreaterThanOrEqual(before + 10);
      expect(await scheduler.armedFor()).toBeLessThanOrEqual(clock.now() + 10);
      // With time moved on, the runtime is asked to wake us at the matching wall-clock moment.
      clock.advanceBy(3_600_000);
      const target = clock.now() + 2_000;
      scheduler.armAtEarliest([target]);
      expect(await scheduler.armedFor()).toBe(target);
      expect(await storage.getAlarm()).toBe(clock.wallTimeOf(target));
      expect(clock.wallTimeOf(target)).toBeLessThan(target - 3_000_000);
    });
  });

  it("arming writes no row; the time already pending is not set again until an alarm runs (or a cancel)", async () => {
    const stub = env.TASKS.get(env.TASKS.idFromName(`scheduler-${crypto.randomUUID()}`));
    await runInDurableObject(stub, async (_o: TaskObject, state) => {
      const rows = rowsCounted(state.storage);
      let alarmsSet = 0;
      const storage = new Proxy(state.storage, {
        get(target, property) {
          const value = Reflect.get(target, property);
          if (property === "setAlarm") alarmsSet++;
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      const clock = new TaskClock();
      const scheduler = new Scheduler(storage, clock);
      const target = clock.now() + 60_000;
      const setsFor = (arm: () => void) => {
        const before = alarmsSet;
        arm();
        return alarmsSet - before;
      };
      expect(setsFor(() => scheduler.armAtEarliest([target]))).toBe(1);
      expect(setsFor(() => scheduler.armAtEarliest([target, target + 5_000]))).toBe(0);
      expect(await state.storage.getAlarm()).toBe(clock.wallTimeOf(target));
      // An alarm run spends the pending alarm (a test may run it early): re-arming sets it again.
      await state.storage.deleteAlarm();
      await scheduler.run(
        undefined,
        async () => {},
        () => scheduler.armAtEarliest([target]),
        {},
      );
      expect(await state.storage.getAlarm()).toBe(clock.wallTimeOf(target));
      await scheduler.cancel();
      expect(setsFor(() => scheduler.armAtEarliest([target]))).toBe(1);
      expect(await state.storage.getAlarm()).toBe(clock.wallTimeOf(target));
      expect(setsFor(() => scheduler.armAtEarliest([target + 1_000]))).toBe(1);
      expect(await scheduler.armedFor()).toBe(target + 1_000);
      expect(rows().rowsWritten).toBe(0);
    });
  });

  it("with no timer, leaves the alarm as it is", async () => {
    await withScheduler(async (scheduler, clock) => {
      const target = clock.now() + 1_000;
      scheduler.armAtEarliest([target]);
      scheduler.armAtEarliest([null, null]);
      expect(await scheduler.armedFor()).toBe(target);
    });
  });

  it("a run that throws is caught, backs off 5 s and re-arms; alarmInfo may be missing", async () => {
    await withScheduler(async (scheduler, clock) => {
      let rearmed = 0;
      let ranAt = 0;
      await scheduler.run(
        undefined,
        async (now) => {
          ranAt = now;
          throw new Error("D1 is overloaded");
        },
        () => {
          rearmed++;
          scheduler.armAtEarliest([clock.now()]);
        },
        {},
      );
      expect(rearmed).toBe(1);
      expect(await scheduler.armedFor()).toBeGreaterThanOrEqual(ranAt + 5_000);
      expect(await scheduler.armedFor()).toBeLessThanOrEqual(clock.now() + 5_000);
    });
  });

  it("every run (with alarmInfo or without) judges due work against the clock now, never a jumped time", async () => {
    await withScheduler(async (scheduler, clock) => {
      clock.advanceBy(86_400_000);
      const seen: number[] = [];
      const info = { retryCount: 1, isRetry: true, scheduledTime: Date.now() };
      const before = clock.now();
      for (const alarmInfo of [undefined, info]) {
        await scheduler.run(
          alarmInfo,
          async (now) => void seen.push(now),
          () => {},
          {},
        );
      }
      expect(seen).toHaveLength(2);
      for (const now of seen) {
        expect(now).toBeGreaterThanOrEqual(before);
        expect(now).toBeLessThanOrEqual(clock.now());
      }
    });
  });
});
