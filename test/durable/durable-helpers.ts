/**
 * Helpers for the TaskObject lifecycle tests: read a task's stored record, move its clock,
 * see what the upstream simulator was asked, and read the money side in D1.
 *
 * The simulator is shared by every test file and the gateway always uses one upstream key,
 * so every fault here is scoped by the task's UPSTREAM id or a unique prompt marker.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { expect } from "vitest";
import type { TaskState } from "../../src/domain/task-machine";
import type { TaskMeta } from "../../src/domain/task-view";
import type { TaskObject } from "../../src/durable/task-object";
import { call, sim, submit, type TenantWithKey, taskStub } from "../helpers";
import { advanceClockTo, clockNow, runAlarmWhenDue } from "./clock-helpers";

export const UPSTREAM_KEY = "sk-sim-gateway-tests";
export const TERMINAL = ["SUCCESS", "FAILURE", "CANCEL"];

export const marker = (label = "do") => `${label}-${crypto.randomUUID()}`;

export interface StoredRecord {
  meta: TaskMeta;
  state: TaskState;
  submitOutcome: unknown;
}

/** The task's record as the TaskObject stored it, or null once it was deleted. */
export async function readRecord(taskId: string): Promise<StoredRecord | null> {
  return runInDurableObject(taskStub(taskId), (_instance: TaskObject, state) => {
    const row = state.storage.sql.exec<{ body: string }>("SELECT body FROM record WHERE id = 1").toArray()[0];
    return row ? (JSON.parse(row.body) as StoredRecord) : null;
  });
}

/**
 * Rewrites the stored record, to stage a state the object could be left in (a lost
 * acknowledgement, a /modal being handled). Never to move time: that is `advanceTo`.
 */
export async function rewriteRecord(taskId: string, update: (record: StoredRecord) => void): Promise<void> {
  await runInDurableObject(taskStub(taskId), (instance: TaskObject, state) => {
    const row = state.storage.sql.exec<{ body: string }>("SELECT body FROM record WHERE id = 1").one();
    const record = JSON.parse(row.body) as StoredRecord;
    update(record);
    state.storage.sql.exec("UPDATE record SET body = ?1 WHERE id = 1", JSON.stringify(record));
    instance.lifecycle.reload();
  });
}

/** The time (on the task's clock) the alarm is armed for (null if none). */
export const wakeAt = (taskId: string) => alarmArmed(taskId);

/** Moves the task's clock forward to `at`, as if that much time had passed. */
export const advanceTo = (taskId: string, at: number) => advanceClockTo(taskStub(taskId), at);

/** The task's clock now. */
export const nowOf = (taskId: string) => clockNow(taskStub(taskId));

/** The moment (on the task's clock) the runtime alarm is set for, or null. */
export async function alarmArmed(taskId: string): Promise<number | null> {
  return runInDurableObject(taskStub(taskId), async (o: TaskObject, state) => {
    const wallTime = await state.storage.getAlarm();
    return wallTime === null ? null : wallTime + (o.clock.now() - Date.now());
  });
}

export async function storageIsEmpty(taskId: string): Promise<boolean> {
  return runInDurableObject(taskStub(taskId), async (_instance: TaskObject, state) => {
    const tables = state.storage.sql
      .exec<{ name: string }>(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite_%'",
      )
      .toArray();
    let rows = 0;
    for (const { name } of tables) {
      rows += state.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM "${name}"`).one().n;
    }
    return rows === 0 && (await state.storage.getAlarm()) === null;
  });
}

export async function upstreamIdOf(taskId: string): Promise<string> {
  const record = await readRecord(taskId);
  const id = record?.meta.upstreamTaskId;
  if (!id) throw new Error(`task ${taskId} has no upstream id`);
  return id;
}

/** How many times the gateway asked the simulator about this upstream task. */
export async function upstreamQueries(upstreamId: string): Promise<number> {
  const stats = await sim("GET", `/_sim/stats?key=${UPSTREAM_KEY}`);
  return stats.queries_by_task?.[upstreamId] ?? 0;
}

/** The simulator's own view of the task (status as the upstream sees it). */
export async function simTask(upstreamId: string): Promise<{ status: string; prompt: string } | undefined> {
  const tasks = (await sim("GET", `/_sim/tasks?key=${UPSTREAM_KEY}`)) as Array<{
    id: string;
    status: string;
    prompt: string;
  }>;
  return tasks.find((t) => t.id === upstreamId);
}

/** Queues a simulator fault; it must carry a filter unique to the test. */
export async function fault(spec: Record<string, unknown>): Promise<void> {
  if (!spec.task_id && !spec.prompt_contains) throw new Error("fault without a unique scope");
  const created = await sim("POST", "/_sim/faults", spec);
  if (!created?.id) throw new Error(`fault not created: ${JSON.stringify(created)}`);
}

export async function taskRow(taskId: string) {
  return env.DB.prepare("SELECT * FROM tasks WHERE id = ?1").bind(taskId).first<any>();
}

export async function ledgerOfTask(taskId: string) {
  const { results } = await env.DB.prepare("SELECT * FROM ledger WHERE task_id = ?1 ORDER BY id")
    .bind(taskId)
    .all<any>();
  return results;
}

export async function inflightOf(t: TenantWithKey): Promise<{ tenant: number; key: number }> {
  const tenant = await env.DB.prepare("SELECT inflight FROM tenants WHERE id = ?1")
    .bind(t.tenantId)
    .first<{ inflight: number }>();
  const key = await env.DB.prepare("SELECT inflight FROM api_keys WHERE id = ?1")
    .bind(t.keyId)
    .first<{ inflight: number }>();
  return { tenant: tenant!.inflight, key: key!.inflight };
}

/** The money invariants of /admin/reconciliation, with the breaches listed on failure. */
export async function expectReconciled(ignore: string[] = []) {
  const report = (await call("GET", "/admin/reconciliation", { admin: true })).body;
  const breaches = (report.breaches as Array<{ check: string }>).filter((b) => !ignore.includes(b.check));
  expect(breaches, JSON.stringify(report.breaches)).toEqual([]);
  if (!ignore.length) expect(report.ok).toBe(true);
  return report;
}

/** Submits and returns the gateway task id (asserting the 200). */
export async function submitOk(
  key: string,
  action: string,
  body: unknown,
  status: "submitted" | "modal" = "submitted",
) {
  const res = await submit(key, action, body);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body.data[0].status).toBe(status);
  return res.body.data[0].task_id as string;
}

/**
 * Drives a task's alarms until it is terminal. Unlike helpers.driveToEnd it only counts
 * alarm runs that happened: while a real (background) alarm of the object is running, no
 * alarm is set and runDurableObjectAlarm returns false, so we just look again.
 */
export async function driveTask(taskId: string, key: string, maxAlarms = 20) {
  let ran = 0;
  for (let i = 0; i < 1_000 && ran < maxAlarms; i++) {
    const current = await view(taskId, key);
    if (TERMINAL.includes(current.body.status)) return current.body;
    if (await runAlarmWhenDue(taskStub(taskId))) ran++;
  }
  throw new Error(`task ${taskId} did not finish after ${ran} alarms`);
}

/** An upscaled SUCCESS image of this tenant: the parent an inpaint needs. */
export async function upscaledParent(t: TenantWithKey, prompt: string): Promise<string> {
  const grid = await submitOk(t.key, "imagine", { prompt });
  expect((await driveTask(grid, t.key)).status).toBe("SUCCESS");
  const up = await submitOk(t.key, "upscale", { task_id: grid, index: 1 });
  expect((await driveTask(up, t.key)).status).toBe("SUCCESS");
  return up;
}

/** Runs one alarm of the task when its time has come (the task's clock moves to the armed time). */
export const alarm = (taskId: string) => runAlarmWhenDue(taskStub(taskId));

/** Runs the task's alarm now, without moving its clock: an early or duplicate delivery. */
export const alarmNow = (taskId: string) => runDurableObjectAlarm(taskStub(taskId));

export const view = async (taskId: string, key: string) => call("GET", `/v1/midjourney/${taskId}`, { key });
