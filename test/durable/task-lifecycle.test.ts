import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { TaskObject } from "../../src/durable/task-object";
import { balanceOf, call, ledgerOf, taskStub, tenantWithKey } from "../helpers";
import {
  advanceTo,
  alarm,
  alarmArmed,
  alarmNow,
  driveTask,
  expectReconciled,
  fault,
  inflightOf,
  ledgerOfTask,
  marker,
  readRecord,
  rewriteRecord,
  simTask,
  storageIsEmpty,
  submitOk,
  taskRow,
  upstreamIdOf,
  upstreamQueries,
  view,
  wakeAt,
} from "./durable-helpers";

const RETENTION_MS = 3 * 86_400_000;

describe("TaskObject lifecycle: SUCCESS", () => {
  it("keeps the charge, frees both in-flight slots and records the task as settled", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await submitOk(t.key, "imagine", { prompt: marker("success") });

    // In flight: one slot on the tenant and on the key, the charge taken, the D1 row open.
    expect(await inflightOf(t)).toEqual({ tenant: 1, key: 1 });
    const charge = (await ledgerOfTask(taskId)).filter((r) => r.kind === "charge");
    expect(charge).toHaveLength(1);
    expect(charge[0].amount).toBeLessThan(0);
    expect(await balanceOf(t.tenantId)).toBe(10_000_000 + charge[0].amount);
    const open = await taskRow(taskId);
    expect(open.status).toBe("NOT_START");
    expect(open.settled_at).toBeNull();
    const first = await view(taskId, t.key);
    expect(first.status).toBe(200);
    expect(first.body.status).toBe("NOT_START");
    expect(first.body.progress).toBe("0%");
    expect(first.body.completed).toBeNull();

    const done = await driveTask(taskId, t.key);
    expect(done.status).toBe("SUCCESS");
    expect(done.progress).toBe("100%");
    expect(done.fail_reason).toBeNull();
    expect(done.id).toBe(taskId);
    expect(done.image_urls).toHaveLength(4);
    expect(typeof done.grid_image_url).toBe("string");
    expect(Array.isArray(done.buttons)).toBe(true);
    expect(typeof done.completed).toBe("number");

    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
    const rows = await ledgerOfTask(taskId);
    expect(rows.map((r) => r.kind)).toEqual(["charge"]);
    expect(await balanceOf(t.tenantId)).toBe(10_000_000 + charge[0].amount);
    const settled = await taskRow(taskId);
    expect(settled.status).toBe("SUCCESS");
    expect(settled.settled_at).not.toBeNull();
    expect(settled.finished_at).not.toBeNull();
    expect(settled.upstream_task_id).toBe(await upstreamIdOf(taskId));
    const record = await readRecord(taskId);
    expect(record!.state.settlement).toEqual({ outcome: "keep", reason: null, recorded: true });
    await expectReconciled();
  });
});

describe("TaskObject lifecycle: FAILURE", () => {
  it("[sim:fail]: refunds exactly once, with the upstream's fail_reason as the ledger reason", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await submitOk(t.key, "imagine", { prompt: `${marker("fail")} [sim:fail]` });
    const done = await driveTask(taskId, t.key);
    expect(done.status).toBe("FAILURE");
    expect(done.progress).toBe("100%");
    const upstreamReason = "Simulated failure: prompt contains [sim:fail]";
    expect(done.fail_reason).toBe(upstreamReason);

    const rows = await ledgerOfTask(taskId);
    expect(rows.map((r) => r.kind)).toEqual(["charge", "refund"]);
    const [charge, refund] = rows;
    expect(refund.amount).toBe(-charge.amount);
    expect(refund.ref_id).toBe(charge.id);
    expect(refund.reason).toBe(upstreamReason);
    expect(await balanceOf(t.tenantId)).toBe(10_000_000);
    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
    const row = await taskRow(taskId);
    expect(row.status).toBe("FAILURE");
    expect(row.fail_reason).toBe(upstreamReason);
    expect(row.settled_at).not.toBeNull();

    // More alarms (time not yet at retention) change nothing.
    for (let i = 0; i < 3; i++) await alarmNow(taskId);
    expect((await ledgerOfTask(taskId)).filter((r) => r.kind === "refund")).toHaveLength(1);
    expect(await balanceOf(t.tenantId)).toBe(10_000_000);
    await expectReconciled();
  });

  it("a fail_task fault: FAILURE with the fault's reason, refunded once", async () => {
    const t = await tenantWithKey(10_000_000);
    const m = marker("failtask");
    const reason = `Job rejected by moderation (${m})`;
    await fault({ type: "fail_task", prompt_contains: m, reason });
    const taskId = await submitOk(t.key, "imagine", { prompt: `a lighthouse ${m}` });
    const done = await driveTask(taskId, t.key);
    expect(done.status).toBe("FAILURE");
    expect(done.fail_reason).toBe(reason);
    const refunds = (await ledgerOfTask(taskId)).filter((r) => r.kind === "refund");
    expect(refunds).toHaveLength(1);
    expect(refunds[0].reason).toBe(reason);
    expect(await balanceOf(t.tenantId)).toBe(10_000_000);
    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
    await expectReconciled();
  });
});

describe("TaskObject lifecycle: queries", () => {
  it("GET /v1/midjourney/{id} is answered by the TaskObject and never reaches the upstream", async () => {
    const t = await tenantWithKey();
    const taskId = await submitOk(t.key, "imagine", { prompt: marker("queries") });
    const upstreamId = await upstreamIdOf(taskId);
    expect(await upstreamQueries(upstreamId)).toBe(0);
    for (let i = 0; i < 15; i++) {
      expect((await view(taskId, t.key)).status).toBe(200);
      expect((await call("GET", `/v1/tasks/${taskId}`, { key: t.key })).status).toBe(200);
    }
    expect(await upstreamQueries(upstreamId)).toBe(0);

    expect((await driveTask(taskId, t.key)).status).toBe("SUCCESS");
    const afterPolling = await upstreamQueries(upstreamId);
    expect(afterPolling).toBeGreaterThanOrEqual(1);
    await Promise.all(Array.from({ length: 20 }, () => view(taskId, t.key)));
    expect(await upstreamQueries(upstreamId)).toBe(afterPolling);
  });

  it("the view's cost is the tenant's price (with its multiplier), never the upstream's", async () => {
    const plain = await tenantWithKey();
    const marked = await tenantWithKey(10_000_000, {}, { price_multiplier_bps: 15_000 });
    const body = { prompt: marker("cost"), speed: "fast" };
    const a = await submitOk(plain.key, "imagine", body);
    const b = await submitOk(marked.key, "imagine", body);
    const chargeA = -(await ledgerOfTask(a)).find((r) => r.kind === "charge").amount;
    const chargeB = -(await ledgerOfTask(b)).find((r) => r.kind === "charge").amount;
    expect(chargeB).toBe(Math.round(chargeA * 1.5));

    const doneA = await driveTask(a, plain.key);
    const doneB = await driveTask(b, marked.key);
    expect(doneA.cost).toBe(chargeA / 1_000_000);
    expect(doneB.cost).toBe(chargeB / 1_000_000);
    // The upstream charges its list price (imagine fast 0.05504 USD): not what tenants see.
    const upstreamTask = await runInDurableObject(taskStub(b), (_o: TaskObject, state) => {
      const record = JSON.parse(
        state.storage.sql.exec<{ body: string }>("SELECT body FROM record").one().body,
      );
      return record.state;
    });
    // Kept beside the tenant's price (for margin), not echoed in the stored result.
    expect(upstreamTask.upstreamCostMicros).toBe(55_040);
    expect(upstreamTask.result.cost).toBeUndefined();
    expect(doneB.cost).not.toBe(upstreamTask.upstreamCostMicros / 1_000_000);
    expect((await taskRow(b)).upstream_cost).toBe(55_040);
    expect((await taskRow(b)).cost).toBe(chargeB);
  });
});

describe("TaskObject lifecycle: after the end", () => {
  it("no upstream poll after the terminal state, however often the alarm runs", async () => {
    const t = await tenantWithKey();
    const taskId = await submitOk(t.key, "imagine", { prompt: marker("quiet") });
    expect((await driveTask(taskId, t.key)).status).toBe("SUCCESS");
    const upstreamId = await upstreamIdOf(taskId);
    const polls = await upstreamQueries(upstreamId);
    const before = await readRecord(taskId);

    for (let i = 0; i < 5; i++) await alarmNow(taskId); // an early/duplicate alarm, long before retention
    // Duplicate runtime deliveries (they carry alarmInfo), all at once.
    await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        runInDurableObject(taskStub(taskId), (o: TaskObject) =>
          o.alarm({ retryCount: i, isRetry: i > 0, scheduledTime: Date.now() }),
        ),
      ),
    );
    expect(await upstreamQueries(upstreamId)).toBe(polls);
    const after = await readRecord(taskId);
    expect(after!.state).toEqual(before!.state);
    // and it sleeps until retention
    const finishedAt = after!.state.finishedAt!;
    expect(await wakeAt(taskId)).toBe(finishedAt + RETENTION_MS);
    expect(await alarmArmed(taskId)).toBe(finishedAt + RETENTION_MS);
  });

  it("a duplicate runtime alarm after the object re-armed for retention does not delete the task early", async () => {
    const t = await tenantWithKey();
    const taskId = await submitOk(t.key, "imagine", { prompt: marker("dup-retention") });
    expect((await driveTask(taskId, t.key)).status).toBe("SUCCESS");
    const finishedAt = (await readRecord(taskId))!.state.finishedAt!;
    expect(await wakeAt(taskId)).toBe(finishedAt + RETENTION_MS);
    // The runtime delivers the (already handled) polling alarm once more.
    await runInDurableObject(taskStub(taskId), (o: TaskObject) =>
      o.alarm({ retryCount: 1, isRetry: true, scheduledTime: Date.now() }),
    );
    expect((await view(taskId, t.key)).status).toBe(200);
    expect(await storageIsEmpty(taskId)).toBe(false);
  });

  it("test-driven duplicate alarms (time jumps to the armed time) never poll again and never throw", async () => {
    const t = await tenantWithKey();
    const taskId = await submitOk(t.key, "imagine", { prompt: marker("dup-jump") });
    expect((await driveTask(taskId, t.key)).status).toBe("SUCCESS");
    const upstreamId = await upstreamIdOf(taskId);
    const polls = await upstreamQueries(upstreamId);
    // Time jumps to the retention time; then the first deletes, the others find nothing.
    await advanceTo(taskId, (await wakeAt(taskId))!);
    await Promise.all(
      Array.from({ length: 5 }, () => runInDurableObject(taskStub(taskId), (o: TaskObject) => o.alarm())),
    );
    expect(await upstreamQueries(upstreamId)).toBe(polls);
    expect(await storageIsEmpty(taskId)).toBe(true);
    expect((await view(taskId, t.key)).status).toBe(404);
    expect((await ledgerOfTask(taskId)).map((r) => r.kind)).toEqual(["charge"]);
  });

  it("retention: the TaskObject's storage is deleted 3 days after the end; D1 row and ledger stay", async () => {
    const t = await tenantWithKey(10_000_000);
    const ok = await submitOk(t.key, "imagine", { prompt: marker("retain") });
    const failed = await submitOk(t.key, "imagine", { prompt: `${marker("retain")} [sim:fail]` });
    expect((await driveTask(ok, t.key)).status).toBe("SUCCESS");
    expect((await driveTask(failed, t.key)).status).toBe("FAILURE");
    const ledgerBefore = await ledgerOf(t.tenantId);
    const balance = await balanceOf(t.tenantId);

    for (const taskId of [ok, failed]) {
      const finishedAt = (await readRecord(taskId))!.state.finishedAt!;
      // Not yet: a second before the retention ends, the task is still there.
      await advanceTo(taskId, finishedAt + RETENTION_MS - 1_000);
      await alarmNow(taskId);
      expect((await view(taskId, t.key)).status).toBe(200);
      // The retention alarm (armed by the object itself) deletes everything.
      await advanceTo(taskId, finishedAt + RETENTION_MS);
      await alarmNow(taskId);
      expect(await storageIsEmpty(taskId)).toBe(true);
      const gone = await view(taskId, t.key);
      expect(gone.status, JSON.stringify(gone.body)).toBe(404);
      expect(gone.body.error.code).toBe("task_not_found");
      expect((await call("GET", `/v1/tasks/${taskId}`, { key: t.key })).status).toBe(404);
      // An alarm after deletion does nothing and does not resurrect the object.
      await runInDurableObject(taskStub(taskId), (o: TaskObject) => o.alarm());
      expect(await storageIsEmpty(taskId)).toBe(true);
      const row = await taskRow(taskId);
      expect(row).not.toBeNull();
      expect(row.settled_at).not.toBeNull();
    }
    expect((await taskRow(ok)).status).toBe("SUCCESS");
    expect((await taskRow(failed)).status).toBe("FAILURE");
    expect(await ledgerOf(t.tenantId)).toEqual(ledgerBefore);
    expect(await balanceOf(t.tenantId)).toBe(balance);
    await expectReconciled();
  });

  it("the retention alarm does not fire for a task whose settlement D1 has not confirmed", async () => {
    const t = await tenantWithKey();
    const taskId = await submitOk(t.key, "imagine", { prompt: marker("unconfirmed") });
    expect((await driveTask(taskId, t.key)).status).toBe("SUCCESS");
    const finishedAt = (await readRecord(taskId))!.state.finishedAt!;
    await rewriteRecord(taskId, (r) => {
      r.state.settlement!.recorded = false;
    });
    await advanceTo(taskId, finishedAt + RETENTION_MS);
    await alarmNow(taskId);
    // The alarm retried the settlement (idempotent in D1) instead of deleting the task.
    const record = await readRecord(taskId);
    expect(record).not.toBeNull();
    expect(record!.state.settlement!.recorded).toBe(true);
    expect((await ledgerOfTask(taskId)).map((r) => r.kind)).toEqual(["charge"]);
    await alarm(taskId);
    expect(await storageIsEmpty(taskId)).toBe(true);
  });
});

describe("TaskObject lifecycle: the simulator agrees", () => {
  it("the upstream task the gateway polled is the one that finished", async () => {
    const t = await tenantWithKey();
    const prompt = marker("agree");
    const taskId = await submitOk(t.key, "imagine", { prompt });
    await driveTask(taskId, t.key);
    const upstream = await simTask(await upstreamIdOf(taskId));
    expect(upstream?.status).toBe("SUCCESS");
    expect(upstream?.prompt).toBe(prompt);
  });
});
