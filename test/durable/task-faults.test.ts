import { describe, expect, it } from "vitest";
import { balanceOf, sim, tenantWithKey } from "../helpers";
import {
  alarm,
  driveTask,
  expectReconciled,
  fault,
  inflightOf,
  ledgerOfTask,
  marker,
  readRecord,
  submitOk,
  taskRow,
  upstreamIdOf,
  upstreamQueries,
  view,
} from "./durable-helpers";

/** The backoff window the machine promises for the n-th error in a row (±25% jitter). */
function backoffWindow(streak: number): [number, number] {
  const base = Math.min(60_000, 2_000 * 2 ** (streak - 1));
  return [Math.floor(base * 0.75), Math.ceil(base * 1.25)];
}

async function remainingFaults(upstreamId: string): Promise<number> {
  const faults = (await sim("GET", "/_sim/faults")) as Array<{ task_id: string | null }>;
  return faults.filter((f) => f.task_id === upstreamId).length;
}

describe("upstream trouble while polling never loses a task", () => {
  it("5xx, 429, 404, hang, slow, garbage, HTML and truncated answers: backoff grows, then SUCCESS with the charge kept", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await submitOk(t.key, "imagine", { prompt: marker("poll-faults") });
    const upstreamId = await upstreamIdOf(taskId);
    const balance = await balanceOf(t.tenantId);
    // Queued in this order (FIFO), each answering one poll of this upstream task only.
    const faults: Array<Record<string, unknown>> = [
      { type: "status", status: 503 },
      { type: "status", status: 500 },
      { type: "status", status: 429, retry_after: 1 },
      { type: "status", status: 502 },
      { type: "status", status: 404 },
      { type: "hang", delay_ms: 2_500 }, // longer than the gateway's 1.5 s upstream timeout
      { type: "slow", delay_ms: 2_500 },
      { type: "garbage" },
      { type: "html" },
      { type: "truncated" },
    ];
    for (const spec of faults) await fault({ ...spec, on: "query", task_id: upstreamId, count: 1 });

    let lastStreak = 0;
    for (let i = 0; i < 40 && (await remainingFaults(upstreamId)) > 0; i++) {
      await alarm(taskId);
      const record = await readRecord(taskId);
      const { state } = record!;
      // Never given up on, never failed, never refunded because of upstream errors.
      expect(state.status).toBe("NOT_START");
      expect(state.settlement).toBeNull();
      expect((await view(taskId, t.key)).body.status).toBe("NOT_START");
      // The error streak only grows, and the next poll waits the backoff for it.
      expect(state.errorStreak).toBeGreaterThanOrEqual(lastStreak);
      lastStreak = state.errorStreak;
      if (state.errorStreak > 0) {
        const [min, max] = backoffWindow(state.errorStreak);
        const delay = state.timers.pollAt! - state.updatedAt;
        expect(delay).toBeGreaterThanOrEqual(min);
        expect(delay).toBeLessThanOrEqual(max);
      }
      expect(state.timers.lifetimeAt).not.toBeNull();
    }
    expect(await remainingFaults(upstreamId)).toBe(0);
    expect(lastStreak).toBe(faults.length);
    // by now the backoff is at its cap
    const capped = (await readRecord(taskId))!.state;
    expect(capped.timers.pollAt! - capped.updatedAt).toBeGreaterThanOrEqual(45_000);

    const done = await driveTask(taskId, t.key);
    expect(done.status).toBe("SUCCESS");
    expect(done.image_urls).toHaveLength(4);
    expect((await readRecord(taskId))!.state.errorStreak).toBe(0);
    expect(await upstreamQueries(upstreamId)).toBeGreaterThanOrEqual(faults.length + 1);
    expect((await ledgerOfTask(taskId)).map((r) => r.kind)).toEqual(["charge"]);
    expect(await balanceOf(t.tenantId)).toBe(balance);
    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
    expect((await taskRow(taskId)).status).toBe("SUCCESS");
    await expectReconciled();
  });

  it("a burst of errors on a quick action (upscale) backs off too, then succeeds", async () => {
    const t = await tenantWithKey(10_000_000);
    const grid = await submitOk(t.key, "imagine", { prompt: marker("quick-faults") });
    expect((await driveTask(grid, t.key)).status).toBe("SUCCESS");
    const up = await submitOk(t.key, "upscale", { task_id: grid, index: 2 });
    const upstreamId = await upstreamIdOf(up);
    await fault({ type: "status", status: 503, on: "query", task_id: upstreamId, count: 3 });
    for (let i = 0; i < 20 && (await remainingFaults(upstreamId)) > 0; i++) {
      await alarm(up);
      const { state } = (await readRecord(up))!;
      expect(state.status).toBe("NOT_START");
      if (state.errorStreak > 0) {
        const [min, max] = backoffWindow(state.errorStreak);
        expect(state.timers.pollAt! - state.updatedAt).toBeGreaterThanOrEqual(min);
        expect(state.timers.pollAt! - state.updatedAt).toBeLessThanOrEqual(max);
      }
    }
    expect((await driveTask(up, t.key)).status).toBe("SUCCESS");
    expect((await ledgerOfTask(up)).map((r) => r.kind)).toEqual(["charge"]);
    await expectReconciled();
  });

  it("a FAILURE seen after a run of errors is refunded exactly once", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await submitOk(t.key, "imagine", { prompt: `${marker("faults-then-fail")} [sim:fail]` });
    const upstreamId = await upstreamIdOf(taskId);
    await fault({ type: "garbage", on: "query", task_id: upstreamId, count: 2 });
    await fault({ type: "status", status: 500, on: "query", task_id: upstreamId, count: 2 });
    const done = await driveTask(taskId, t.key);
    expect(done.status).toBe("FAILURE");
    expect(await remainingFaults(upstreamId)).toBe(0);
    const rows = await ledgerOfTask(taskId);
    expect(rows.map((r) => r.kind)).toEqual(["charge", "refund"]);
    expect(await balanceOf(t.tenantId)).toBe(10_000_000);
    await expectReconciled();
  });
});
