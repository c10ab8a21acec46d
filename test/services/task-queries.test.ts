/**
 * Task queries: a final view (a finished task with nothing left to settle or watch) is kept
 * on the isolate, so polling a finished task asks its object once per period; a view that
 * can still change never is; a kept view is only ever the asking tenant's.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import type { TaskQueryAnswer } from "../../src/durable/task/contract";
import type { TaskObject } from "../../src/durable/task-object";
import { forgetFinalViews, queryTask } from "../../src/services/task-queries";
import { runAlarmWhenDue } from "../durable/clock-helpers";
import { rewriteRecord, submitOk } from "../durable/durable-helpers";
import { driveToEnd, taskStub, tenantWithKey } from "../helpers";

const KEEP_MS = 10_000;

afterEach(() => forgetFinalViews());

const submitted = (tenant: { key: string }) =>
  submitOk(tenant.key, "imagine", { prompt: `query cache ${crypto.randomUUID()}` });

/** The object's own answer (RPC's types cannot carry the view's `unknown` values). */
const objectAnswer = async (taskId: string, tenantId: string) =>
  (await taskStub(taskId).query(tenantId, "task")) as TaskQueryAnswer | null;

/** Drives the task to its end and until nothing is left to settle (its views are then final). */
async function finished(tenant: { key: string; tenantId: string }) {
  const taskId = await submitted(tenant);
  await driveToEnd(taskId, tenant.key);
  for (let i = 0; i < 20; i++) {
    const answer = await objectAnswer(taskId, tenant.tenantId);
    if (answer?.final) return taskId;
    await runAlarmWhenDue(taskStub(taskId));
  }
  throw new Error(`task ${taskId} never became final`);
}

/** Removes the object's record, so only a kept view can still answer. */
const forgetRecord = (taskId: string) =>
  runInDurableObject(taskStub(taskId), (o: TaskObject, state) => {
    state.storage.sql.exec("DELETE FROM record");
    o.lifecycle.reload();
  });

describe("task queries", () => {
  it("keeps a finished task's final view for the period, then asks the object again", async () => {
    const tenant = await tenantWithKey();
    const taskId = await finished(tenant);
    const ask = (now: number) =>
      queryTask(env, { tenantId: tenant.tenantId, taskId, shape: "task", keepMs: KEEP_MS }, now);

    const t0 = Date.now();
    const first = await ask(t0);
    expect(first).toMatchObject({ id: taskId, status: "SUCCESS" });
    await forgetRecord(taskId);
    expect(await ask(t0 + KEEP_MS - 1)).toEqual(first);
    expect(await ask(t0 + KEEP_MS)).toBeNull();
  });

  it("keeps each shape apart and never answers another tenant from a kept view", async () => {
    const owner = await tenantWithKey();
    const other = await tenantWithKey();
    const taskId = await finished(owner);
    const ask = (tenantId: string, shape: "task" | "unified") =>
      queryTask(env, { tenantId, taskId, shape, keepMs: KEEP_MS });

    const bare = await ask(owner.tenantId, "task");
    const unified = await ask(owner.tenantId, "unified");
    expect(unified).toMatchObject({ code: 200, data: { id: taskId, status: "completed" } });
    await forgetRecord(taskId);
    expect(await ask(owner.tenantId, "task")).toEqual(bare);
    expect(await ask(owner.tenantId, "unified")).toEqual(unified);
    expect(await ask(other.tenantId, "task")).toBeNull();
  });

  it("never keeps a view that can still change: a running task's next query shows its change", async () => {
    const tenant = await tenantWithKey();
    const taskId = await submitted(tenant);
    const ask = () => queryTask(env, { tenantId: tenant.tenantId, taskId, shape: "task", keepMs: KEEP_MS });

    expect((await objectAnswer(taskId, tenant.tenantId))?.final).toBe(false);
    const before = await ask();
    await rewriteRecord(taskId, (record) => {
      record.state.progress = 42;
    });
    const after = await ask();
    expect(before?.progress).not.toBe("42%");
    expect(after?.progress).toBe("42%");
  });

  it("keeps nothing when the period is zero (KEY_CACHE_SECONDS = 0)", async () => {
    const tenant = await tenantWithKey();
    const taskId = await finished(tenant);
    expect(
      await queryTask(env, { tenantId: tenant.tenantId, taskId, shape: "task", keepMs: 0 }),
    ).not.toBeNull();
    await forgetRecord(taskId);
    expect(await queryTask(env, { tenantId: tenant.tenantId, taskId, shape: "task", keepMs: 0 })).toBeNull();
  });
});
