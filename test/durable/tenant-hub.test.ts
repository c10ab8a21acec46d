/**
 * The TenantHub's table of open tasks: what operator task lists read instead of asking each
 * task's object. It is fed by the changes task objects already publish to the hub, forgets a
 * task at its terminal change, stays bounded, and costs D1 nothing: D1 keeps its two writes
 * per task (admission and settlement), whatever the number of progress ticks in between.
 *
 * D1 storage is this file's own, so the D1 write counter below sees only this file's tasks.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { KEEP_EVENTS, MAX_OPEN_TASKS, OpenTaskTable, type TenantHub } from "../../src/durable/tenant-hub";
import { call, submit, tenantWithKey } from "../helpers";
import { alarm, driveTask, submitOk, upscaledParent, view } from "./durable-helpers";

const hubOf = (tenantId: string) => env.TENANT_HUB.get(env.TENANT_HUB.idFromName(tenantId));

/** A change as a task object publishes it (its task view). */
const change = (id: string, status: string, progress: number) => ({
  id,
  status,
  action: "IMAGINE",
  progress: `${progress}%`,
});

const freshId = () => `task_${crypto.randomUUID()}`;

/** Polls until `check` passes (the hub hears of a task's changes just after they happen). */
async function eventually<T>(read: () => Promise<T>, check: (value: T) => boolean, timeoutMs = 5000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (check(value) || Date.now() > until) return value;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function openTaskRows(tenantId: string): Promise<number> {
  return runInDurableObject(
    hubOf(tenantId),
    (_hub: TenantHub, state) =>
      state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM open_tasks").one().n,
  );
}

/**
 * Counts every row D1 writes from now on (triggers on every table log into a table of their
 * own); `stop()` drops them and returns the writes seen, by table.
 */
async function countD1Writes(): Promise<{ stop: () => Promise<string[]> }> {
  const { results } = await env.DB.prepare(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'd1_%'",
  ).all<{ name: string }>();
  const tables = results.map((r) => r.name);
  await env.DB.prepare("CREATE TABLE test_d1_writes (n INTEGER PRIMARY KEY, what TEXT NOT NULL)").run();
  const triggers: string[] = [];
  for (const table of tables) {
    for (const op of ["INSERT", "UPDATE", "DELETE"]) {
      const name = `test_count_${table}_${op}`;
      triggers.push(name);
      await env.DB.prepare(
        `CREATE TRIGGER ${name} AFTER ${op} ON "${table}" BEGIN
           INSERT INTO test_d1_writes (what) VALUES ('${op} ${table}'); END`,
      ).run();
    }
  }
  return {
    stop: async () => {
      for (const name of triggers) await env.DB.prepare(`DROP TRIGGER ${name}`).run();
      const { results: writes } = await env.DB.prepare("SELECT what FROM test_d1_writes ORDER BY n").all<{
        what: string;
      }>();
      await env.DB.prepare("DROP TABLE test_d1_writes").run();
      return writes.map((w) => w.what);
    },
  };
}

async function openTasksInD1(): Promise<string[]> {
  const { results } = await env.DB.prepare("SELECT id FROM tasks WHERE settled_at IS NULL").all<{
    id: string;
  }>();
  return results.map((r) => r.id);
}

const adminList = async (query: string) => {
  const page = await call("GET", `/admin/tasks?${query}`, { admin: true });
  expect(page.status, JSON.stringify(page.body)).toBe(200);
  return page.body.data as any[];
};

describe("the hub's event log", () => {
  it("numbers events in a growing sequence that its trim never resets, without a sqlite_sequence write per event", async () => {
    await runInDurableObject(hubOf(`ten_${crypto.randomUUID()}`), async (hub: TenantHub, state) => {
      const sql = state.storage.sql;
      const id = freshId();
      // Past the first trim: the log keeps its newest KEEP_EVENTS events.
      const total = KEEP_EVENTS + 1_000;
      for (let i = 1; i <= total; i++) await hub.publish(id, i, change(id, "IN_PROGRESS", i % 100));
      const span = () =>
        sql
          .exec<{ first: number; last: number; n: number }>(
            "SELECT MIN(seq) AS first, MAX(seq) AS last, COUNT(*) AS n FROM events",
          )
          .one();
      expect(span()).toEqual({ first: total - KEEP_EVENTS + 1, last: total, n: KEEP_EVENTS });
      await hub.publish(id, total + 1, change(id, "SUCCESS", 100));
      expect(span().last).toBe(total + 1);
      const sequences = sql.exec("SELECT name FROM sqlite_master WHERE name = 'sqlite_sequence'").toArray();
      expect(sequences).toEqual([]);
    });
  });
});

describe("the hub's open tasks", () => {
  it("keeps each open task's latest status and progress, answers only the ids asked, forgets a task at its end", async () => {
    const tenantId = `ten_${crypto.randomUUID()}`;
    const hub = hubOf(tenantId);
    const [a, b, unknown] = [freshId(), freshId(), freshId()];
    await hub.publish(a, 1_000, change(a, "NOT_START", 0));
    await hub.publish(b, 1_500, change(b, "NOT_START", 0));
    await hub.publish(a, 2_000, change(a, "IN_PROGRESS", 40));
    await hub.publish(a, 3_000, change(a, "IN_PROGRESS", 70));

    expect(await hub.liveTasks([a, b, unknown])).toEqual({
      [a]: { status: "IN_PROGRESS", progress: 70, updatedAt: 3_000 },
      [b]: { status: "NOT_START", progress: 0, updatedAt: 1_500 },
    });
    expect(await hub.liveTasks([b])).toEqual({ [b]: { status: "NOT_START", progress: 0, updatedAt: 1_500 } });
    expect(await hub.liveTasks([])).toEqual({});

    await hub.publish(a, 4_000, change(a, "SUCCESS", 100));
    expect(Object.keys(await hub.liveTasks([a, b]))).toEqual([b]);
    await hub.publish(b, 5_000, change(b, "FAILURE", 100));
    expect(await hub.liveTasks([a, b])).toEqual({});
    expect(await openTaskRows(tenantId)).toBe(0);
  });

  it("stays bounded: past its limit the least recently changed task goes, and unknown statuses are ignored", async () => {
    // Every task a tenant can have open at once fits (PATCH /admin/tenants caps max_inflight at 100,000).
    expect(MAX_OPEN_TASKS).toBeGreaterThanOrEqual(100_000);
    await runInDurableObject(hubOf(`ten_${crypto.randomUUID()}`), (_hub: TenantHub, state) => {
      const table = new OpenTaskTable(state.storage.sql, 3);
      const ids = Array.from({ length: 6 }, freshId);
      const rows = () =>
        state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM open_tasks").one().n;
      let seq = 0;
      const record = (id: string, status: string, progress = 10) =>
        table.record(id, ++seq, seq * 1000, change(id, status, progress));

      record(ids[0]!, "NOT_START");
      record(ids[1]!, "SUBMITTED");
      record(ids[2]!, "IN_PROGRESS");
      record(ids[0]!, "IN_PROGRESS", 50); // changed again: now the most recent
      record(ids[3]!, "NOT_START"); // 4 > 3: ids[1] goes
      record(ids[4]!, "MODAL", 15); // ids[2] goes
      record(ids[5]!, "RUNNING"); // not a status: ignored
      expect(rows()).toBe(3);
      expect(table.size()).toBe(3);
      expect(Object.keys(table.get(ids)).sort()).toEqual([ids[0], ids[3], ids[4]].sort());
      // Any number of ids in one call (a statement binds at most 100 parameters).
      const many = [...Array.from({ length: 500 }, freshId), ...ids];
      expect(Object.keys(table.get(many)).sort()).toEqual([ids[0], ids[3], ids[4]].sort());
      expect(table.get([ids[0]!])[ids[0]!]).toEqual({ status: "IN_PROGRESS", progress: 50, updatedAt: 4000 });

      // A terminal change frees a place; 1,000 more tasks never grow it past its limit.
      record(ids[3]!, "CANCEL");
      expect(rows()).toBe(2);
      for (let i = 0; i < 1_000; i++) record(freshId(), "IN_PROGRESS", i % 100);
      expect(rows()).toBe(3);
      expect(table.size()).toBe(3);
    });
  });

  it("a real task's changes reach the table, and its end removes it", async () => {
    const t = await tenantWithKey();
    const id = (await submit(t.key, "imagine", { prompt: "hub table" })).body.data[0].task_id as string;
    const heard = await eventually(
      () => hubOf(t.tenantId).liveTasks([id]),
      (live) => id in live,
    );
    expect(heard[id]).toMatchObject({ status: "NOT_START", progress: 0 });
    expect((await driveTask(id, t.key)).status).toBe("SUCCESS");
    expect(
      await eventually(
        () => hubOf(t.tenantId).liveTasks([id]),
        (live) => !(id in live),
      ),
    ).toEqual({});
    expect(await openTaskRows(t.tenantId)).toBe(0);
  });
});

describe("GET /admin/tasks with live state", () => {
  it("shows open tasks' live status and progress from the hubs in one call, with no D1 write per progress tick", async () => {
    const a = await tenantWithKey();
    const b = await tenantWithKey();
    const parent = await upscaledParent(a, "live list parent");
    // An inpaint waits in MODAL (15%) for /modal: open for 30 minutes, polled by its alarms.
    const waiting = await submitOk(a.key, "inpaint", { task_id: parent }, "modal");
    const other = await submitOk(
      b.key,
      "inpaint",
      { task_id: await upscaledParent(b, "other parent") },
      "modal",
    );
    // Admissions and the parents' settlements are done: only the two waiting tasks are open.
    expect((await eventually(openTasksInD1, (ids) => ids.length === 2, 10_000)).sort()).toEqual(
      [waiting, other].sort(),
    );

    const writes = await countD1Writes();
    // The live MODAL state the task objects published, for both tenants, in one list call.
    const first = await eventually(
      () => adminList("status=open"),
      (rows) => rows.every((row) => row.live?.status === "MODAL"),
    );
    expect(first.map((row) => [row.id, row.status, row.live?.status, row.live?.progress])).toEqual([
      [other, "open", "MODAL", 15],
      [waiting, "open", "MODAL", 15],
    ]);
    expect(Date.parse(first[0].live.updated_at)).toBeGreaterThan(0);

    // Progress ticks, as a task object publishes them to its tenant's hub, and real polls.
    for (const progress of [20, 35, 50, 65, 80]) {
      await hubOf(a.tenantId).publish(waiting, Date.now(), change(waiting, "IN_PROGRESS", progress));
      const [row] = await adminList(`tenant_id=${a.tenantId}&status=open`);
      expect(row).toMatchObject({ id: waiting, status: "open", live: { status: "IN_PROGRESS", progress } });
    }
    for (let i = 0; i < 3; i++) await driveOneAlarm(other);
    // The list answered from the hub: the task object itself still says MODAL.
    expect((await view(waiting, a.key)).body.status).toBe("MODAL");
    expect(await writes.stop()).toEqual([]);

    // Settling does write D1 (so the counter above could see writes): the modal step is
    // admitted, the task ends, and its row now gives the terminal status with no live state.
    const settling = await countD1Writes();
    const modal = await submit(b.key, "modal", { task_id: other, prompt: "a red hat" });
    expect(modal.status, JSON.stringify(modal.body)).toBe(200);
    expect((await driveTask(other, b.key)).status).toBe("SUCCESS");
    const done = await eventually(
      () => adminList(`tenant_id=${b.tenantId}&status=SUCCESS&action=inpaint`),
      (rows) => rows.length === 1,
    );
    expect(done[0]).toMatchObject({ id: other, status: "SUCCESS", live: null });
    const settled = await settling.stop();
    expect(settled).toContain("UPDATE tasks");
    expect(settled.filter((w) => w.startsWith("INSERT ledger")).length).toBeGreaterThan(0);
    expect(
      await eventually(
        () => openTaskRows(b.tenantId),
        (n) => n === 0,
      ),
    ).toBe(0);

    // The detail route tells the same live state as the list.
    const detail = await call("GET", `/admin/tasks/${waiting}`, { admin: true });
    expect(detail.body).toMatchObject({ status: "open", live: { status: "IN_PROGRESS", progress: 80 } });

    // Leave nothing polling: the waiting task continues and finishes too.
    expect((await submit(a.key, "modal", { task_id: waiting, prompt: "a blue hat" })).status).toBe(200);
    expect((await driveTask(waiting, a.key)).status).toBe("SUCCESS");
  });
});

/** Runs one of the task's alarms (a poll), waiting while a real background alarm runs. */
async function driveOneAlarm(taskId: string) {
  for (let i = 0; i < 200 && !(await alarm(taskId)); i++) {
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
