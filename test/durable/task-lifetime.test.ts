import { describe, expect, it } from "vitest";
import { balanceOf, call, tenantWithKey } from "../helpers";
import {
  advanceTo,
  alarm,
  alarmNow,
  expectReconciled,
  fault,
  inflightOf,
  ledgerOfTask,
  marker,
  nowOf,
  readRecord,
  rewriteRecord,
  submitOk,
  taskRow,
  upscaledParent,
  upstreamIdOf,
  upstreamQueries,
  view,
  wakeAt,
} from "./durable-helpers";

// This file records late upstream results on purpose: reconciliation lists them (not a money breach).
const LATE = ["late_upstream_results"];

/** Moves the task's clock to its maximum lifetime: 2 hours have gone by. */
async function expireLifetime(taskId: string) {
  await advanceTo(taskId, (await readRecord(taskId))!.state.timers.lifetimeAt!);
}

describe("maximum lifetime", () => {
  it("a task that never ends is failed (upstream_timeout) and refunded once; a late SUCCESS is recorded, money untouched", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await submitOk(t.key, "imagine", { prompt: marker("lifetime") });
    const upstreamId = await upstreamIdOf(taskId);
    const config = await readRecord(taskId);
    expect(config!.state.timers.lifetimeAt! - config!.state.createdAt).toBe(2 * 3_600_000);
    // The upstream keeps failing every poll…
    await fault({ type: "status", status: 503, on: "query", task_id: upstreamId, count: 3 });
    await alarm(taskId);
    await alarm(taskId);
    expect((await readRecord(taskId))!.state.status).toBe("NOT_START");
    // …until the 2 hours are over.
    await expireLifetime(taskId);
    await alarm(taskId);

    const failed = await view(taskId, t.key);
    expect(failed.body.status).toBe("FAILURE");
    expect(failed.body.fail_reason).toBe("upstream_timeout");
    expect(failed.body.progress).toBe("100%");
    const rows = await ledgerOfTask(taskId);
    expect(rows.map((r) => r.kind)).toEqual(["charge", "refund"]);
    expect(rows[1].amount).toBe(-rows[0].amount);
    expect(rows[1].reason).toBe("upstream_timeout");
    expect(await balanceOf(t.tenantId)).toBe(10_000_000);
    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
    const row = await taskRow(taskId);
    expect(row.status).toBe("FAILURE");
    expect(row.fail_reason).toBe("upstream_timeout");
    expect(row.late_upstream_status).toBeNull();

    // The late watch: a rare look at the upstream (15 min later), which still fails once…
    const record = await readRecord(taskId);
    const settledAt = record!.state.finishedAt!;
    expect(record!.state.timers.pollAt).toBe(settledAt + 15 * 60_000);
    expect(await wakeAt(taskId)).toBe(settledAt + 15 * 60_000);
    let sawLateError = false;
    for (let i = 0; i < 5; i++) {
      const before = await nowOf(taskId);
      await alarm(taskId);
      const watched = (await readRecord(taskId))!.state;
      if (watched.lateUpstreamStatus) break;
      // still failing: look again 15 min after this poll, no money moves
      sawLateError = true;
      expect(watched.timers.pollAt).toBeGreaterThanOrEqual(before + 15 * 60_000);
      expect(watched.timers.pollAt).toBeLessThanOrEqual((await nowOf(taskId)) + 15 * 60_000);
      expect((await ledgerOfTask(taskId)).map((r) => r.kind)).toEqual(["charge", "refund"]);
    }
    expect(sawLateError).toBe(true);
    // …and then shows the upstream finished after all.
    const late = await readRecord(taskId);
    expect(late!.state.lateUpstreamStatus).toBe("SUCCESS");
    expect(late!.state.timers.pollAt).toBeNull();
    expect(late!.state.status).toBe("FAILURE");
    expect((await view(taskId, t.key)).body.status).toBe("FAILURE");
    expect((await taskRow(taskId)).late_upstream_status).toBe("SUCCESS");
    expect((await ledgerOfTask(taskId)).map((r) => r.kind)).toEqual(["charge", "refund"]);
    expect(await balanceOf(t.tenantId)).toBe(10_000_000);

    // Nothing polls any more.
    const polls = await upstreamQueries(upstreamId);
    for (let i = 0; i < 3; i++) await alarmNow(taskId);
    expect(await upstreamQueries(upstreamId)).toBe(polls);

    const report = await expectReconciled(LATE);
    const lateRows = report.breaches.filter((b: { check: string }) => b.check === "late_upstream_results");
    expect(lateRows.map((b: { task_id: string }) => b.task_id)).toEqual([taskId]);
  });

  it("the lifetime fires even in MODAL (nobody ever calls /modal and the deadline is further away)", async () => {
    const t = await tenantWithKey(10_000_000);
    const up = await upscaledParent(t, marker("lifetime-modal"));
    const taskId = await submitOk(t.key, "inpaint", { task_id: up }, "modal");
    const balance = await balanceOf(t.tenantId);
    // A MODAL deadline further away than the lifetime (staged), then the 2 hours go by.
    await rewriteRecord(taskId, (r) => {
      r.state.timers.modalDeadlineAt = r.state.timers.lifetimeAt! + 86_400_000;
    });
    await expireLifetime(taskId);
    await alarm(taskId);
    const v = await view(taskId, t.key);
    expect(v.body.status).toBe("FAILURE");
    expect(v.body.fail_reason).toBe("upstream_timeout");
    // nothing was charged for the inpaint: nothing to refund
    expect(await ledgerOfTask(taskId)).toEqual([]);
    expect(await balanceOf(t.tenantId)).toBe(balance);
    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
    const late = await call("POST", "/v1/midjourney/generations/modal", {
      key: t.key,
      body: { task_id: taskId, prompt: "too late" },
    });
    expect(late.status).toBe(409);
    expect(await ledgerOfTask(taskId)).toEqual([]);
    await expectReconciled(LATE);
  });

  it("a task that is still polling has its lifetime armed: the alarm is never later than the lifetime", async () => {
    const t = await tenantWithKey();
    const taskId = await submitOk(t.key, "imagine", { prompt: marker("lifetime-armed") });
    const upstreamId = await upstreamIdOf(taskId);
    await fault({ type: "status", status: 500, on: "query", task_id: upstreamId, count: 12 });
    for (let i = 0; i < 12; i++) {
      await alarm(taskId);
      const record = await readRecord(taskId);
      if (record!.state.status !== "NOT_START") break;
      expect(await wakeAt(taskId)).toBeLessThanOrEqual(record!.state.timers.lifetimeAt!);
    }
  });
});
