import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { settleTask } from "../../src/db/admission";
import type { Effect, Observation } from "../../src/domain/task-machine";
import type { TaskObject } from "../../src/durable/task-object";
import { balanceOf, taskStub, tenantWithKey } from "../helpers";
import { runAlarmWhenDue } from "./clock-helpers";
import {
  advanceTo,
  alarmNow,
  driveTask,
  expectReconciled,
  inflightOf,
  ledgerOfTask,
  marker,
  readRecord,
  rewriteRecord,
  submitOk,
  taskRow,
  upstreamIdOf,
  upstreamQueries,
  view,
  wakeAt,
} from "./durable-helpers";

/** The object's private entry points, to replay what alarms and polls would feed it. */
interface Internals {
  lifecycle: {
    observe(observation: Observation): Promise<void>;
    perform(effect: Effect): Promise<void>;
  };
}
const internals = (o: TaskObject) => (o as unknown as Internals).lifecycle;

const runtimeAlarm = (taskId: string, retryCount = 0) =>
  runInDurableObject(taskStub(taskId), (o: TaskObject) =>
    o.alarm({ retryCount, isRetry: retryCount > 0, scheduledTime: Date.now() }),
  );

/** Published statuses in the object's durable event log, in order. */
async function eventStatuses(taskId: string, tenantId: string): Promise<string[]> {
  const events = await runInDurableObject(taskStub(taskId), (o: TaskObject) => o.eventsAfter(tenantId, 0));
  return (events ?? []).map((e) => String(e.data.status));
}

async function refunds(taskId: string) {
  return (await ledgerOfTask(taskId)).filter((r) => r.kind === "refund");
}

/** Moves the task's clock to its next poll, so the poll is due now. */
async function pollDueNow(taskId: string) {
  await advanceTo(taskId, (await readRecord(taskId))!.state.timers.pollAt!);
}

describe("duplicated alarms", () => {
  it("ten concurrent runtime deliveries of a due alarm: one FAILURE, one refund, slots freed once", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await submitOk(t.key, "imagine", { prompt: `${marker("dup-fail")} [sim:fail]` });
    await pollDueNow(taskId);
    await Promise.all(Array.from({ length: 10 }, (_, i) => runtimeAlarm(taskId, i)));

    expect((await view(taskId, t.key)).body.status).toBe("FAILURE");
    expect(await refunds(taskId)).toHaveLength(1);
    expect(await balanceOf(t.tenantId)).toBe(10_000_000);
    // decremented once, not ten times
    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
    // one terminal event published, not one per duplicate
    const statuses = await eventStatuses(taskId, t.tenantId);
    expect(statuses.filter((s) => s === "FAILURE")).toHaveLength(1);
    expect(statuses.at(-1)).toBe("FAILURE");
    await expectReconciled();
  });

  it("ten concurrent runtime deliveries on a SUCCESS: the charge is kept, no refund", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await submitOk(t.key, "imagine", { prompt: marker("dup-ok") });
    const balance = await balanceOf(t.tenantId);
    await pollDueNow(taskId);
    await Promise.all(Array.from({ length: 10 }, (_, i) => runtimeAlarm(taskId, i)));
    expect((await view(taskId, t.key)).body.status).toBe("SUCCESS");
    expect((await ledgerOfTask(taskId)).map((r) => r.kind)).toEqual(["charge"]);
    expect(await balanceOf(t.tenantId)).toBe(balance);
    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
    expect((await eventStatuses(taskId, t.tenantId)).filter((s) => s === "SUCCESS")).toHaveLength(1);
    await expectReconciled();
  });

  it("test-driven alarm storms (concurrent o.alarm() and many runDurableObjectAlarm) never refund twice", async () => {
    const t = await tenantWithKey(10_000_000);
    const failing = await submitOk(t.key, "imagine", { prompt: `${marker("storm")} [sim:fail]` });
    const ok = await submitOk(t.key, "imagine", { prompt: marker("storm") });
    const balanceWithOkCharge = 10_000_000 + (await ledgerOfTask(ok))[0].amount;
    for (const taskId of [failing, ok]) {
      // The storm comes when the armed time has come.
      await advanceTo(taskId, (await wakeAt(taskId))!);
      await Promise.all(
        Array.from({ length: 8 }, () => runInDurableObject(taskStub(taskId), (o: TaskObject) => o.alarm())),
      );
      for (let i = 0; i < 8; i++) await runAlarmWhenDue(taskStub(taskId));
    }
    expect(await refunds(failing)).toHaveLength(1);
    expect(await refunds(ok)).toHaveLength(0);
    expect((await taskRow(failing)).status).toBe("FAILURE");
    expect((await taskRow(ok)).status).toBe("SUCCESS");
    expect(await balanceOf(t.tenantId)).toBe(balanceWithOkCharge);
    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
    await expectReconciled();
  });

  it("twenty sequential alarms after the end (before retention) change nothing and poll nothing", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await submitOk(t.key, "imagine", { prompt: `${marker("seq")} [sim:fail]` });
    expect((await driveTask(taskId, t.key)).status).toBe("FAILURE");
    const polls = await upstreamQueries(await upstreamIdOf(taskId));
    const before = await readRecord(taskId);
    for (let i = 0; i < 20; i++) {
      if (i % 2) await runtimeAlarm(taskId, i);
      else await alarmNow(taskId);
    }
    expect((await readRecord(taskId))!.state).toEqual(before!.state);
    expect(await upstreamQueries(await upstreamIdOf(taskId))).toBe(polls);
    expect(await refunds(taskId)).toHaveLength(1);
    await expectReconciled();
  });
});

describe("repeated settlement", () => {
  it("settleTask called again and again (also concurrently, also with the opposite outcome) refunds once", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await submitOk(t.key, "imagine", { prompt: `${marker("settle")} [sim:fail]` });
    expect((await driveTask(taskId, t.key)).status).toBe("FAILURE");
    const upstreamTaskId = await upstreamIdOf(taskId);
    const request = (refund: boolean, status: "SUCCESS" | "FAILURE") => ({
      taskId,
      status,
      refund,
      reason: "again",
      failReason: "again",
      upstreamTaskId,
      at: Date.now(),
    });
    const results = await Promise.all([
      ...Array.from({ length: 6 }, () => settleTask(env.DB, request(true, "FAILURE"))),
      settleTask(env.DB, request(false, "SUCCESS")),
    ]);
    expect(results.every((first) => first === false)).toBe(true);
    expect(await refunds(taskId)).toHaveLength(1);
    expect(await balanceOf(t.tenantId)).toBe(10_000_000);
    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
    const row = await taskRow(taskId);
    expect(row.status).toBe("FAILURE");
    expect(row.fail_reason).not.toBe("again");
    await expectReconciled();
  });

  it("the very first settlement races itself: exactly one call wins", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await submitOk(t.key, "imagine", { prompt: marker("settle-race") });
    // Before the object settles it, eight concurrent refunds race for the open task.
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        settleTask(env.DB, {
          taskId,
          status: "FAILURE",
          refund: true,
          reason: "race",
          failReason: "race",
          upstreamTaskId: null,
          at: Date.now(),
        }),
      ),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await refunds(taskId)).toHaveLength(1);
    expect(await balanceOf(t.tenantId)).toBe(10_000_000);
    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
    // The object, which later sees SUCCESS, cannot undo or repeat that settlement.
    await driveTask(taskId, t.key);
    expect(await refunds(taskId)).toHaveLength(1);
    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
  });

  it("the object's settle effect performed repeatedly, and a lost acknowledgement retried by alarms, refund once", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await submitOk(t.key, "imagine", { prompt: `${marker("perform")} [sim:fail]` });
    expect((await driveTask(taskId, t.key)).status).toBe("FAILURE");
    await runInDurableObject(taskStub(taskId), async (o: TaskObject) => {
      const effect: Effect = {
        type: "settle",
        status: "FAILURE",
        outcome: "refund",
        reason: "upstream_failure",
        refundSteps: ["submit"],
      };
      await Promise.all(Array.from({ length: 5 }, () => internals(o).perform(effect)));
    });
    // D1 recorded it, but the object "forgot" (as if it crashed before saving that): alarms retry.
    for (let i = 0; i < 3; i++) {
      await rewriteRecord(taskId, (r) => {
        r.state.settlement!.recorded = false;
      });
      await alarmNow(taskId);
      expect((await readRecord(taskId))!.state.settlement!.recorded).toBe(true);
    }
    expect(await refunds(taskId)).toHaveLength(1);
    expect(await balanceOf(t.tenantId)).toBe(10_000_000);
    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
    await expectReconciled();
  });
});

describe("duplicate upstream observations", () => {
  it("the same terminal report many times (and contradicting ones after it) settle once", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await submitOk(t.key, "imagine", { prompt: marker("dup-obs") });
    const failure = (status: "FAILURE" | "SUCCESS" | "CANCEL" | "IN_PROGRESS"): Observation => ({
      type: "upstream",
      at: Date.now(),
      status,
      progress: status === "IN_PROGRESS" ? 50 : 100,
      failReason: status === "FAILURE" ? "Job failed upstream" : null,
      result: {},
    });
    await runInDurableObject(taskStub(taskId), async (o: TaskObject) => {
      await internals(o).observe(failure("IN_PROGRESS"));
      await Promise.all(Array.from({ length: 6 }, () => internals(o).observe(failure("FAILURE"))));
      await internals(o).observe(failure("SUCCESS"));
      await internals(o).observe(failure("CANCEL"));
      await internals(o).observe(failure("IN_PROGRESS"));
    });
    const v = await view(taskId, t.key);
    expect(v.body.status).toBe("FAILURE");
    expect(v.body.fail_reason).toBe("Job failed upstream");
    expect(v.body.progress).toBe("100%");
    expect(await refunds(taskId)).toHaveLength(1);
    expect((await refunds(taskId))[0].reason).toBe("Job failed upstream");
    expect(await balanceOf(t.tenantId)).toBe(10_000_000);
    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
    expect((await taskRow(taskId)).status).toBe("FAILURE");
    // What subscribers saw only went forward: NOT_START, IN_PROGRESS, FAILURE, once each.
    expect(await eventStatuses(taskId, t.tenantId)).toEqual(["NOT_START", "IN_PROGRESS", "FAILURE"]);
    await expectReconciled();
  });

  it("intermediate and backwards reports reach the view in order and never go back", async () => {
    // The simulator only finishes tasks instantly for the gateway's key, so the
    // intermediate statuses are fed to the object directly here.
    const t = await tenantWithKey(10_000_000);
    const taskId = await submitOk(t.key, "imagine", { prompt: marker("progress") });
    const seen: Array<{ status: string; progress: string }> = [];
    const report = async (status: string, progress: number) => {
      await runInDurableObject(taskStub(taskId), (o: TaskObject) =>
        internals(o).observe({
          type: "upstream",
          at: Date.now(),
          status: status as never,
          progress,
          failReason: null,
          result: {},
        }),
      );
      const v = (await view(taskId, t.key)).body;
      seen.push({ status: v.status, progress: v.progress });
    };
    await report("SUBMITTED", 10);
    await report("SUBMITTED", 25);
    await report("IN_PROGRESS", 40);
    await report("SUBMITTED", 20); // backwards
    await report("IN_PROGRESS", 30); // lower progress
    await report("IN_PROGRESS", 70);
    await report("IN_PROGRESS", 70); // duplicate
    expect(seen).toEqual([
      { status: "SUBMITTED", progress: "10%" },
      { status: "SUBMITTED", progress: "25%" },
      { status: "IN_PROGRESS", progress: "40%" },
      { status: "IN_PROGRESS", progress: "40%" },
      { status: "IN_PROGRESS", progress: "40%" },
      { status: "IN_PROGRESS", progress: "70%" },
      { status: "IN_PROGRESS", progress: "70%" },
    ]);
    expect(await eventStatuses(taskId, t.tenantId)).toEqual([
      "NOT_START",
      "SUBMITTED",
      "SUBMITTED",
      "IN_PROGRESS",
      "IN_PROGRESS",
    ]);
    expect((await driveTask(taskId, t.key)).status).toBe("SUCCESS");
    expect(await refunds(taskId)).toHaveLength(0);
  });
});
