/**
 * The upstream queue wired into tasks: when every eligible member is full a task is accepted,
 * charged and waits in NOT_START in its member's FIFO queue; a release wakes the head, which
 * submits; its alarm recovers a lost wake-up and fails it (refunded once) past the wait bound;
 * the queue bounds (overall and per tenant, per member) refuse before admission, uncharged.
 * Each member is a simulator account of its own; members run with time_scale 1 so their
 * tasks stay open until the test moves the member's clock.
 */
import { env } from "cloudflare:test";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { configFrom } from "../../../src/env";
import { gateOf } from "../../../src/services/upstream-pool";
import { balanceOf, call, driveToEnd, ledgerOf, sim, submit, taskStub, tenantWithKey } from "../../helpers";
import { expectError, expectSubmitted, marker } from "../../routes/route-helpers";
import { advanceClockTo, runAlarmWhenDue } from "../clock-helpers";
import { addMember as addPoolMember, type Member, statsOf } from "./pool-helpers";

/** Members here keep their tasks open until the test moves the member's clock. */
const addMember = (settings: Record<string, unknown> = {}) =>
  addPoolMember(settings, { name: "queue", timeScale: 1 });

const finishOpenTasks = (member: Member) =>
  sim("POST", "/_sim/clock", { advance_ms: 3_600_000, key: member.key });
const imagine = (key: string) => submit(key, "imagine", { prompt: marker("p") });
const view = async (taskId: string, key: string) =>
  (await call("GET", `/v1/midjourney/${taskId}`, { key })).body;
const isTerminal = (status: string) => ["SUCCESS", "FAILURE", "CANCEL"].includes(status);
/** A waiting task shows its place; a submitted one (NOT_START too, until its first poll) does not. */
const isWaiting = (v: { status: string; queue_position?: number }) =>
  v.status === "NOT_START" && v.queue_position !== undefined;

async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, what: string): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const value = await read();
    if (ok(value)) return value;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The task as its object shows it (not over HTTP: a drain would pass the per-key read limit). */
const objectView = async (taskId: string, tenantId: string) =>
  (await taskStub(taskId).view(tenantId)) as unknown as { status: string; queue_position?: number };

/** Finishes every open task of the members, round after round, until every task is terminal. */
async function drain(members: Member[], tasks: Array<{ id: string; tenantId: string }>) {
  for (let round = 0; round < 200; round++) {
    const views = await Promise.all(
      tasks.map(async (t) => ({ ...t, view: await objectView(t.id, t.tenantId) })),
    );
    const open = views.filter((t) => !isTerminal(t.view.status));
    if (!open.length) return views.map((t) => t.view);
    for (const member of members) await finishOpenTasks(member);
    // Tasks holding a slot poll and finish; their release wakes the queue's head.
    await Promise.all(open.filter((t) => !isWaiting(t.view)).map((t) => runAlarmWhenDue(taskStub(t.id))));
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("tasks did not drain");
}

async function disableEveryMember() {
  const list = await call("GET", "/admin/upstreams", { admin: true });
  for (const member of list.body.data ?? list.body) {
    await call("PATCH", `/admin/upstreams/${member.id}`, { admin: true, body: { enabled: false } });
  }
}

beforeAll(disableEveryMember);
beforeEach(disableEveryMember);

describe("tasks beyond every cap wait in a queue", () => {
  it("120 concurrent submits over caps 3 + 2: never more open than a cap, the rest queued, all finish, ledger exact", async () => {
    const a = await addMember({ max_inflight: 3 });
    const b = await addMember({ max_inflight: 2 });
    const PER_TENANT = 60;
    const tenants = [await tenantWithKey(100_000_000), await tenantWithKey(100_000_000)];
    const requests = tenants.flatMap((t) => Array.from({ length: PER_TENANT }, () => t));
    const answers = await Promise.all(requests.map((t) => imagine(t.key)));
    const tasks = answers.map((res, i) => ({ id: expectSubmitted(res), tenantId: requests[i]!.tenantId }));
    const [ga, gb] = [await gateOf(env, a.id).status(), await gateOf(env, b.id).status()];
    expect([ga.inflight, gb.inflight]).toEqual([3, 2]);
    expect(ga.queued + gb.queued).toBe(2 * PER_TENANT - 5);
    const waiting = (await Promise.all(tasks.map((t) => objectView(t.id, t.tenantId)))).filter(isWaiting);
    expect(waiting).toHaveLength(2 * PER_TENANT - 5);

    const done = await drain([a, b], tasks);
    expect(done.every((v) => v.status === "SUCCESS")).toBe(true);
    expect((await statsOf(a)).peak_open_tasks).toBeLessThanOrEqual(3);
    expect((await statsOf(b)).peak_open_tasks).toBeLessThanOrEqual(2);
    expect((await statsOf(a)).submits_accepted + (await statsOf(b)).submits_accepted).toBe(2 * PER_TENANT);
    for (const gate of [a, b])
      expect(await gateOf(env, gate.id).status()).toMatchObject({ inflight: 0, queued: 0 });
    for (const t of tenants) {
      const ledger = await ledgerOf(t.tenantId);
      const sum = ledger.reduce((total: number, row: any) => total + row.amount, 0);
      expect(ledger.filter((row: any) => row.kind === "charge")).toHaveLength(PER_TENANT);
      expect(ledger.filter((row: any) => row.kind === "refund")).toHaveLength(0);
      expect(await balanceOf(t.tenantId)).toBe(sum);
    }
  }, 240_000);

  it("drains in FIFO order, each waiting task showing its place until a slot frees", async () => {
    const member = await addMember({ max_inflight: 1 });
    const tenant = await tenantWithKey(100_000_000);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(expectSubmitted(await imagine(tenant.key)));
    for (const [i, id] of ids.slice(1).entries()) {
      expect(await view(id, tenant.key)).toMatchObject({ status: "NOT_START", queue_position: i + 1 });
    }
    for (let i = 0; i < ids.length; i++) {
      const running = await until(
        () => view(ids[i]!, tenant.key),
        (v) => !isWaiting(v),
        `task ${i} to leave the queue`,
      );
      expect(running.queue_position).toBeUndefined();
      expect((await statsOf(member)).submits).toBe(i + 1);
      // Everything behind it still waits: a slot went to the head only.
      for (const later of ids.slice(i + 1)) expect(isWaiting(await view(later, tenant.key))).toBe(true);
      await finishOpenTasks(member);
      expect((await driveToEnd(ids[i]!, tenant.key)).status).toBe("SUCCESS");
    }
    // The event log shows the wait: a NOT_START event carrying the place, before the submit.
    const events = (await taskStub(ids[2]!).eventsAfter(tenant.tenantId, 0)) as unknown as Array<{
      data: Record<string, unknown>;
    }>;
    expect(events.some((e) => e.data.status === "NOT_START" && e.data.queue_position === 2)).toBe(true);
  }, 60_000);

  it("a lost wake-up is recovered by the task's own alarm", async () => {
    const member = await addMember({ max_inflight: 1 });
    const tenant = await tenantWithKey(100_000_000);
    const holder = expectSubmitted(await imagine(tenant.key));
    const waiter = expectSubmitted(await imagine(tenant.key));
    // The slot frees at the gate without anybody telling the waiting task.
    expect(await gateOf(env, member.id).release(holder)).toEqual({ released: true, granted: [waiter] });
    expect(isWaiting(await view(waiter, tenant.key))).toBe(true);
    await runAlarmWhenDue(taskStub(waiter));
    expect(isWaiting(await view(waiter, tenant.key))).toBe(false);
    expect((await statsOf(member)).submits).toBe(2);
    await finishOpenTasks(member);
    expect((await driveToEnd(waiter, tenant.key)).status).toBe("SUCCESS");
    expect((await driveToEnd(holder, tenant.key)).status).toBe("SUCCESS");
  });

  it("a waiting task its member refuses clearly once woken goes to another member, charged once", async () => {
    const first = await addMember({ max_inflight: 1, priority: 0 });
    const second = await addMember({ max_inflight: 1, priority: 1 });
    const tenant = await tenantWithKey(100_000_000);
    const onFirst = expectSubmitted(await imagine(tenant.key));
    const onSecond = expectSubmitted(await imagine(tenant.key));
    const waiter = expectSubmitted(await imagine(tenant.key));
    expect(await gateOf(env, first.id).status()).toMatchObject({ inflight: 1, queued: 1 });
    await sim("POST", "/_sim/faults", {
      type: "status",
      status: 500,
      on: "submit",
      count: 1,
      key: first.key,
    });
    await finishOpenTasks(second);
    expect((await driveToEnd(onSecond, tenant.key)).status).toBe("SUCCESS");
    await finishOpenTasks(first);
    expect((await driveToEnd(onFirst, tenant.key)).status).toBe("SUCCESS");
    await until(
      () => statsOf(second),
      (stats) => stats.submits_accepted === 2,
      "the waiter on the second member",
    );
    await finishOpenTasks(second);
    expect((await driveToEnd(waiter, tenant.key)).status).toBe("SUCCESS");
    expect((await statsOf(first)).submits_refused).toBe(1);
    const ledger = (await ledgerOf(tenant.tenantId)).filter((row: any) => row.task_id === waiter);
    expect(ledger.map((row: any) => row.kind)).toEqual(["charge"]);
  });

  it("a task that waits past the bound fails and is refunded exactly once, and leaves the queue", async () => {
    const member = await addMember({ max_inflight: 1 });
    const tenant = await tenantWithKey(100_000_000);
    const holder = expectSubmitted(await imagine(tenant.key));
    const waiter = expectSubmitted(await imagine(tenant.key));
    const stub = taskStub(waiter);
    const created = (await view(waiter, tenant.key)).created * 1000;
    await advanceClockTo(stub, created + configFrom(env).upstreamQueueMaxWaitMs + 1_000);
    const failed = await driveToEnd(waiter, tenant.key);
    expect(failed.status).toBe("FAILURE");
    expect(failed.fail_reason).toContain("upstream slot");
    for (let i = 0; i < 3; i++) await runAlarmWhenDue(stub);
    const ledger = (await ledgerOf(tenant.tenantId)).filter((row: any) => row.task_id === waiter);
    expect(ledger.map((row: any) => row.kind).sort()).toEqual(["charge", "refund"]);
    expect(await gateOf(env, member.id).status()).toMatchObject({ inflight: 1, queued: 0 });
    await finishOpenTasks(member);
    expect((await driveToEnd(holder, tenant.key)).status).toBe("SUCCESS");
    expect((await statsOf(member)).submits).toBe(1);
    expect(await gateOf(env, member.id).status()).toMatchObject({ inflight: 0, queued: 0 });
  });
});

describe("queue bounds refuse before admission", () => {
  /** Places in the member's queue taken by tasks that are not ours to run (given back after). */
  async function fillQueue(member: Member, n: number, tenantId?: string) {
    const ids = Array.from({ length: n }, () => `task_fill_${crypto.randomUUID()}`);
    for (const id of ids) {
      const place = await gateOf(env, member.id).acquire(id, {
        maxInflight: 1,
        queueBound: 10_000,
        tenantId,
        tenantQueueBound: 10_000,
      });
      expect("queued" in place).toBe(true);
    }
    return ids;
  }

  it("per tenant: past the tenant's share of a member's queue, 429 upstream_busy and nothing written; other tenants still queue", async () => {
    const member = await addMember({ max_inflight: 1 });
    const tenant = await tenantWithKey(100_000_000);
    const holder = expectSubmitted(await imagine(tenant.key));
    const fill = await fillQueue(member, configFrom(env).upstreamQueueMaxPerTenant, tenant.tenantId);
    const ledgerBefore = await ledgerOf(tenant.tenantId);
    const refused = await imagine(tenant.key);
    expectError(refused, 429, "upstream_busy");
    expect(refused.headers.get("retry-after")).toBeTruthy();
    expect(await ledgerOf(tenant.tenantId)).toEqual(ledgerBefore);
    const other = await tenantWithKey(100_000_000);
    const queued = expectSubmitted(await imagine(other.key));
    expect(isWaiting(await view(queued, other.key))).toBe(true);
    for (const id of fill) await gateOf(env, member.id).release(id);
    await finishOpenTasks(member);
    await drain(
      [member],
      [
        { id: holder, tenantId: tenant.tenantId },
        { id: queued, tenantId: other.tenantId },
      ],
    );
  }, 60_000);

  it("overall: past a member's queue bound, 429 upstream_busy for every tenant and nothing written", async () => {
    const member = await addMember({ max_inflight: 1 });
    const tenant = await tenantWithKey(100_000_000);
    const holder = expectSubmitted(await imagine(tenant.key));
    const fill = await fillQueue(member, configFrom(env).upstreamQueueMax);
    const other = await tenantWithKey(100_000_000);
    for (const t of [tenant, other]) {
      const ledgerBefore = await ledgerOf(t.tenantId);
      expectError(await imagine(t.key), 429, "upstream_busy");
      expect(await ledgerOf(t.tenantId)).toEqual(ledgerBefore);
    }
    for (const id of fill) await gateOf(env, member.id).release(id);
    await finishOpenTasks(member);
    expect((await driveToEnd(holder, tenant.key)).status).toBe("SUCCESS");
  }, 60_000);
});
