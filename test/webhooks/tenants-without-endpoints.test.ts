/**
 * A tenant without webhook endpoints costs its tasks no webhook work: a task's whole D1 life
 * is its admission and its settlement. An endpoint registered while a task runs gets the
 * task's changes from the moment the tenant hub told the task, and always its terminal event
 * (settlement reads the endpoints again, in its own batch), even if the hub's call was lost.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { admit, settleTaskAskingWebhooks } from "../../src/db/admission";
import { countRoundTrips } from "../../src/db/round-trip-counter";
import { findPrincipalByKeyId } from "../../src/db/tenants";
import { cachedUpstreams } from "../../src/db/upstreams";
import { createEndpoint } from "../../src/db/webhooks";
import { billableParams } from "../../src/domain/billable-params";
import { newTaskId } from "../../src/domain/ids";
import type { StoredEvent } from "../../src/durable/task/contract";
import { cachedPriceBook } from "../../src/pricing-cache";
import { submit as billingSubmit } from "../../src/services/billing";
import { planOf, recordingDb } from "../db/plans";
import { runAlarmWhenDue } from "../durable/clock-helpers";
import { readRecord, TERMINAL } from "../durable/durable-helpers";
import { call, driveToEnd, submit, type TenantWithKey, taskStub, tenantWithKey } from "../helpers";
import { aboutTask, newSink, registerAdmin, settledReceived, waitReceived } from "./hooks";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A D1 binding that records each round trip as the SQL it carried (a batch: all of its
 * statements), so a count can also say which trips they were.
 */
function tripRecorder(db: D1Database) {
  const trips: string[][] = [];
  const original = new WeakMap<object, { statement: D1PreparedStatement; sql: string }>();
  const wrap = (statement: D1PreparedStatement, sql: string): D1PreparedStatement => {
    const proxy = new Proxy(statement, {
      get(target, property) {
        if (property === "bind") return (...values: unknown[]) => wrap(target.bind(...values), sql);
        if (property === "run" || property === "all" || property === "first" || property === "raw") {
          return (...args: unknown[]) => {
            trips.push([sql]);
            return (target[property] as (...a: unknown[]) => unknown).apply(target, args);
          };
        }
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    original.set(proxy, { statement, sql });
    return proxy;
  };
  const recorded = new Proxy(db, {
    get(target, property) {
      if (property === "prepare") return (sql: string) => wrap(target.prepare(sql), sql);
      if (property === "batch") {
        return (statements: D1PreparedStatement[]) => {
          trips.push(statements.map((s) => original.get(s)?.sql ?? "?"));
          return target.batch(statements.map((s) => original.get(s)?.statement ?? s));
        };
      }
      if (property === "exec") {
        return (sql: string) => {
          trips.push([sql]);
          return target.exec(sql);
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { db: recorded, trips };
}

/**
 * Runs `life` with every D1 use of this isolate counted: the Worker's env is the object the
 * Durable Objects are constructed with, so a TaskObject created meanwhile keeps the counted
 * binding for its whole life.
 */
async function withCountedD1<T>(life: () => Promise<T>) {
  const shared = env as unknown as { DB: D1Database };
  const real = shared.DB;
  const recorder = tripRecorder(real);
  const counter = countRoundTrips(recorder.db);
  shared.DB = counter.db;
  try {
    const result = await life();
    return { result, trips: recorder.trips, roundTrips: counter.count() };
  } finally {
    shared.DB = real;
  }
}

/** Drives the tasks' alarms until each is terminal, asking their objects (no D1, no route). */
async function driveObjects(tenantId: string, taskIds: string[]) {
  for (const taskId of taskIds) {
    const stub = taskStub(taskId);
    for (let tries = 0; ; tries++) {
      const view = (await stub.view(tenantId)) as { status?: string } | null;
      if (TERMINAL.includes(String(view?.status))) break;
      if (tries > 400) throw new Error(`task ${taskId} did not finish`);
      await runAlarmWhenDue(stub);
    }
  }
  // Background work of the objects (a webhook pump started by the last change) has run.
  await sleep(200);
}

async function submitDirect(t: TenantWithKey, body: Record<string, unknown>) {
  const principal = await findPrincipalByKeyId(env.DB, t.keyId);
  await cachedPriceBook(env.DB); // priced from the isolate's cache, as a warm Worker does
  await cachedUpstreams(env.DB); // routed over the isolate's cached pool, likewise
  return async () => {
    const answer = await billingSubmit(env, {
      principal: principal!,
      action: "imagine",
      billable: billableParams("imagine", body),
      taskId: newTaskId(),
      parent: null,
      prompt: String(body.prompt),
      metadata: null,
      upstreamBody: body,
      idempotency: null,
      requestId: `req_${crypto.randomUUID()}`,
    });
    if (!answer.ok) throw answer.error;
    await driveObjects(t.tenantId, answer.taskIds);
    return answer.taskIds;
  };
}

const isAdmission = (trip: string[]) => trip.some((sql) => sql.includes("INSERT INTO rate_windows"));
const isSettlement = (trip: string[]) => trip.some((sql) => sql.includes("UPDATE tasks SET status"));

/** The webhook id of the message for event `seq` of a task to an endpoint. */
const messageId = (taskId: string, seq: number, endpointId: string) =>
  `msg_${taskId.slice(5)}_${String(seq).padStart(6, "0")}_${endpointId.slice(3)}`;

async function eventSeqs(t: TenantWithKey, taskId: string, after = 0) {
  const events = (await taskStub(taskId).eventsAfter(t.tenantId, after)) as StoredEvent[] | null;
  return events!.map((event) => ({ seq: event.seq, status: String(event.data.status) }));
}

async function until(check: () => Promise<boolean>, what: string) {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await sleep(15);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("a tenant without webhook endpoints", () => {
  it("a task's whole D1 life is two round trips: admission and settlement", async () => {
    const t = await tenantWithKey();
    const life = await submitDirect(t, { prompt: "no hooks, two trips" });
    const { result, trips, roundTrips } = await withCountedD1(life);
    expect(result).toHaveLength(1);
    expect(trips.map((trip) => trip.join("; "))).toHaveLength(2);
    expect(roundTrips).toBe(2);
    expect(isAdmission(trips[0]!)).toBe(true);
    expect(isSettlement(trips[1]!)).toBe(true);
    expect((await readRecord(result[0]!))?.meta.webhooks).toBe(false);
  });

  it("siblings of a repeat request carry the flag: one admission and one settlement per task", async () => {
    const t = await tenantWithKey();
    const life = await submitDirect(t, { prompt: "no hooks, repeated", repeat: 2 });
    const { result, trips, roundTrips } = await withCountedD1(life);
    expect(result).toHaveLength(2);
    expect(roundTrips).toBe(3);
    expect(trips.filter(isAdmission)).toHaveLength(1);
    expect(trips.filter(isSettlement)).toHaveLength(2);
    for (const taskId of result) expect((await readRecord(taskId))?.meta.webhooks).toBe(false);
  });

  it("a tenant with an endpoint does webhook work as before (the flag is read at admission)", async () => {
    const t = await tenantWithKey();
    await registerAdmin(t.tenantId, { url: newSink("before").url, events: "all" });
    const life = await submitDirect(t, { prompt: "hooks, more trips" });
    const { result, roundTrips } = await withCountedD1(life);
    expect((await readRecord(result[0]!))?.meta.webhooks).toBe(true);
    expect(roundTrips).toBeGreaterThan(2);
  });
});

describe("an endpoint registered while a task runs", () => {
  it("receives the task's changes once the hub told the task, and its terminal event", async () => {
    const t = await tenantWithKey();
    const res = await submit(t.key, "imagine", { prompt: "late endpoint" });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const taskId = res.body.data[0].task_id as string;
    expect((await readRecord(taskId))?.meta.webhooks).toBe(false);
    // The hub knows the task once its first change reached it (the bound the README states).
    const hub = env.TENANT_HUB.get(env.TENANT_HUB.idFromName(t.tenantId));
    await until(async () => taskId in (await hub.liveTasks([taskId])), "the hub to know the task");

    const sink = newSink("late");
    const endpoint = await registerAdmin(t.tenantId, { url: sink.url, events: "all" });
    await until(async () => (await readRecord(taskId))?.meta.webhooks === true, "the task to be told");
    const before = (await eventSeqs(t, taskId)).at(-1)!.seq;

    await driveToEnd(taskId, t.key);
    const later = await eventSeqs(t, taskId, before);
    expect(later.at(-1)?.status).toBe("SUCCESS");
    const got = await waitReceived(sink.name, later.length, aboutTask(taskId));
    expect(got.map((request) => request.headers["webhook-id"]).sort()).toEqual(
      later.map((event) => messageId(taskId, event.seq, endpoint.id)).sort(),
    );
    expect((await settledReceived(sink.name)).filter(aboutTask(taskId))).toHaveLength(later.length);
  });

  it("still receives the terminal event when nobody told the task (settlement finds the endpoint)", async () => {
    const t = await tenantWithKey();
    const res = await submit(t.key, "imagine", { prompt: "late endpoint, hub call lost" });
    const taskId = res.body.data[0].task_id as string;
    const sink = newSink("lost");
    // Written straight into D1: no registration route, so no hub call reaches the task.
    const endpoint = await createEndpoint(env.DB, {
      tenantId: t.tenantId,
      keyId: null,
      url: sink.url,
      events: "all",
    });
    expect((await readRecord(taskId))?.meta.webhooks).toBe(false);

    const final = await driveToEnd(taskId, t.key);
    expect(final.status).toBe("SUCCESS");
    const terminal = (await eventSeqs(t, taskId)).at(-1)!;
    expect(terminal.status).toBe("SUCCESS");
    const [request] = await waitReceived(sink.name, 1, aboutTask(taskId));
    expect(request!.headers["webhook-id"]).toBe(messageId(taskId, terminal.seq, endpoint!.id));
    expect(JSON.parse(request!.body)).toMatchObject({ type: "task.succeeded", data: final });
    expect(await settledReceived(sink.name)).toHaveLength(1);
    expect((await readRecord(taskId))?.meta.webhooks).toBe(true);
  });

  it("an endpoint scoped to another key, or another tenant's, leaves this key's tasks without webhook work", async () => {
    const t = await tenantWithKey();
    const other = await tenantWithKey();
    await registerAdmin(other.tenantId, { url: newSink("other-tenant").url });
    const second = await call("POST", `/admin/tenants/${t.tenantId}/keys`, {
      admin: true,
      body: { name: "second", rpm_limit: 10_000, max_inflight: 10_000 },
    });
    expect(second.status).toBe(201);
    await registerAdmin(t.tenantId, { url: newSink("other-key").url, key_id: second.body.id });
    const mine = await submit(t.key, "imagine", { prompt: "another key's endpoint" });
    expect((await readRecord(mine.body.data[0].task_id))?.meta.webhooks).toBe(false);
    const theirs = await submit(second.body.key, "imagine", { prompt: "my key's endpoint" });
    expect((await readRecord(theirs.body.data[0].task_id))?.meta.webhooks).toBe(true);
  });
});

describe("the tenant hub's webhooksChanged", () => {
  it("tells the tenant's open tasks only, and answers how many it told", async () => {
    const t = await tenantWithKey();
    const open = (await submit(t.key, "imagine", { prompt: "hub tells me" })).body.data[0].task_id as string;
    const done = (await submit(t.key, "imagine", { prompt: "hub skips me" })).body.data[0].task_id as string;
    await driveToEnd(done, t.key);
    const hub = env.TENANT_HUB.get(env.TENANT_HUB.idFromName(t.tenantId));
    await until(async () => open in (await hub.liveTasks([open])), "the hub to know the open task");
    await until(async () => !(done in (await hub.liveTasks([done]))), "the hub to see the end");

    expect(await hub.webhooksChanged()).toBe(1);
    expect((await readRecord(open))?.meta.webhooks).toBe(true);
    expect((await readRecord(done))?.meta.webhooks).toBe(false);
  });
});

describe("the endpoint question is an index search", () => {
  it("in the admission batch and in the settlement batch", async () => {
    const t = await tenantWithKey();
    for (let i = 0; i < 5; i++) {
      const other = await tenantWithKey(0);
      await registerAdmin(other.tenantId, { url: newSink("plan").url });
    }
    await env.DB.exec("ANALYZE");
    const { db, statements } = recordingDb();
    const taskId = newTaskId();
    const admitted = await admit(db, {
      tenantId: t.tenantId,
      keyId: t.keyId,
      taskId,
      action: "imagine",
      parentTaskId: null,
      costMicros: 1_000,
      kind: "new_task",
      idempotency: null,
      at: Date.now(),
    });
    expect(admitted).toMatchObject({ ok: true, webhooks: false });
    const settled = await settleTaskAskingWebhooks(
      db,
      {
        taskId,
        status: "SUCCESS",
        refund: false,
        reason: null,
        failReason: null,
        upstreamTaskId: null,
        at: Date.now(),
      },
      { tenantId: t.tenantId, keyId: t.keyId },
    );
    expect(settled).toEqual({ settled: true, webhooks: false });
    const questions = statements.filter((s) => s.sql.includes("FROM webhook_endpoints"));
    expect(questions).toHaveLength(2);
    for (const question of questions) {
      const plan = await planOf(question);
      expect(plan.join("\n")).toMatch(/SEARCH webhook_endpoints USING INDEX webhook_endpoints_by_tenant/);
      expect(plan.filter((line) => /^SCAN webhook_endpoints\b/.test(line))).toEqual([]);
    }
  });
});
