/**
 * GET /v1/events: the tenant-wide stream of all its tasks' changes (the TenantHub).
 * Its ids are the hub's own sequence; each event's data is the task object as it was
 * at that change, exactly what that task's own stream sent.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { runAlarmWhenDue } from "../durable/clock-helpers";
import { call, driveToEnd, submit, taskStub, tenantWithKey } from "../helpers";
import {
  heartbeat,
  openStream,
  openTaskStream,
  PAST_MAX_AGE_MS,
  payloads,
  type SseMessage,
  type SseReader,
  sseReader,
  taskIdOf,
  view,
} from "./sse";

async function openTenantStream(
  options: { key?: string; query?: string; headers?: Record<string, string> } = {},
): Promise<SseReader> {
  const response = await openStream(`/v1/events${options.query ? `?${options.query}` : ""}`, options);
  expect(response.status, response.status === 200 ? "" : await response.clone().text()).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
  return sseReader(response);
}

/** Reads exactly `count` events. */
async function take(stream: SseReader, count: number): Promise<SseMessage[]> {
  const out: SseMessage[] = [];
  while (out.length < count) {
    const message = await stream.next();
    if (message === null) throw new Error(`stream ended after ${out.length} events`);
    out.push(message);
  }
  return out;
}

/** Reads until an event of `taskId` with `status` arrives; returns everything read. */
async function until(stream: SseReader, taskId: string, status: string): Promise<SseMessage[]> {
  const out: SseMessage[] = [];
  for (;;) {
    const message = await stream.next();
    if (message === null) throw new Error("stream ended");
    out.push(message);
    const data = JSON.parse(message.data);
    if (data.id === taskId && data.status === status) return out;
  }
}

/** The full event log of one task, from its own stream. */
async function taskLog(taskId: string, key: string) {
  return (await openTaskStream(taskId, { key, query: "last_event_id=0" })).rest();
}

const ids = (messages: SseMessage[]) => messages.map((m) => Number(m.id));
const strictlyIncreasing = (values: number[]) => values.every((v, i) => i === 0 || v > values[i - 1]!);

describe("tenant stream", () => {
  it("carries every change of the tenant's tasks, in order, each as the task stream sent it, and nothing of other tenants", async () => {
    const a = await tenantWithKey();
    const b = await tenantWithKey();
    const streamA = await openTenantStream({ key: a.key });
    const streamB = await openTenantStream({ key: b.key });

    const a1 = taskIdOf(await submit(a.key, "imagine", { prompt: "hub a1" }));
    const b1 = taskIdOf(await submit(b.key, "imagine", { prompt: "hub b1" }));
    await driveToEnd(a1, a.key);
    await driveToEnd(b1, b.key);
    // B's own stream shows its task, so B's changes have been published by now.
    const gotB = await until(streamB, b1, "SUCCESS");
    expect(payloads(gotB).every((d) => d.id === b1)).toBe(true);

    // A sentinel task of A's: everything on A's stream up to it belongs to A.
    const a2 = taskIdOf(await submit(a.key, "imagine", { prompt: "hub a2" }));
    const gotA = await until(streamA, a2, "NOT_START");
    const data = payloads(gotA);
    expect(data.every((d) => d.id === a1 || d.id === a2)).toBe(true);
    expect(gotA.every((m) => m.event === "status")).toBe(true);
    expect(strictlyIncreasing(ids(gotA))).toBe(true);

    // a1's changes, in order, byte for byte the task's own log.
    const a1Events = gotA.filter((m) => JSON.parse(m.data).id === a1);
    const log = await taskLog(a1, a.key);
    expect(a1Events.map((m) => m.data)).toEqual(log.map((m) => m.data));
    expect(JSON.parse(a1Events.at(-1)!.data)).toEqual(await view(a1, a.key));
    await streamA.cancel();
    await streamB.cancel();
  });

  it("a new subscriber gets no backlog, only changes from now on", async () => {
    const t = await tenantWithKey();
    const old = taskIdOf(await submit(t.key, "imagine", { prompt: "hub old" }));
    await driveToEnd(old, t.key);
    const stream = await openTenantStream({ key: t.key });
    const fresh = taskIdOf(await submit(t.key, "imagine", { prompt: "hub fresh" }));
    const [first] = await take(stream, 1);
    expect(JSON.parse(first!.data)).toMatchObject({ id: fresh, status: "NOT_START" });
    await stream.cancel();
  });

  it("resumes after a cut with Last-Event-ID: every missed change in order, nothing twice, then live", async () => {
    const t = await tenantWithKey();
    const first = await openTenantStream({ key: t.key });
    const t1 = taskIdOf(await submit(t.key, "imagine", { prompt: "hub resume 1" }));
    const [seen] = await take(first, 1);
    expect(JSON.parse(seen!.data)).toMatchObject({ id: t1, status: "NOT_START" });
    await first.cancel();

    // Missed while disconnected: t1 finishes, t2 starts and fails.
    await driveToEnd(t1, t.key);
    const t2 = taskIdOf(await submit(t.key, "imagine", { prompt: "hub resume 2 [sim:fail]" }));
    await driveToEnd(t2, t.key);

    const resumed = await openTenantStream({ key: t.key, headers: { "last-event-id": seen!.id! } });
    const missed = await take(resumed, 3);
    const changes = payloads(missed).map((d) => `${d.id} ${d.status}`);
    // Two tasks publish independently: their changes may interleave, each task's stay in order.
    expect([...changes].sort()).toEqual([`${t1} SUCCESS`, `${t2} FAILURE`, `${t2} NOT_START`].sort());
    expect(changes.indexOf(`${t2} NOT_START`)).toBeLessThan(changes.indexOf(`${t2} FAILURE`));
    expect(ids(missed)).toEqual([1, 2, 3].map((i) => Number(seen!.id) + i));
    // Then live, continuing the same sequence.
    const t3 = taskIdOf(await submit(t.key, "imagine", { prompt: "hub resume 3" }));
    const [live] = await take(resumed, 1);
    expect(JSON.parse(live!.data)).toMatchObject({ id: t3, status: "NOT_START" });
    expect(Number(live!.id)).toBe(Number(missed.at(-1)!.id) + 1);
    await resumed.cancel();

    // The query form replays the same, from the very start with 0.
    const replay = await openTenantStream({ key: t.key, query: "last_event_id=0" });
    const all = await take(replay, 5);
    expect(all.map((m) => m.id)).toEqual([seen, ...missed, live].map((m) => m!.id));
    expect(all.map((m) => m.data)).toEqual([seen, ...missed, live].map((m) => m!.data));
    await replay.cancel();
  });

  it("a stream token scoped to task ids sees only those tasks, in the backlog and live", async () => {
    const t = await tenantWithKey();
    const mine = taskIdOf(await submit(t.key, "imagine", { prompt: "hub scoped mine" }));
    const other = taskIdOf(await submit(t.key, "imagine", { prompt: "hub scoped other" }));
    const minted = await call("POST", "/v1/stream-tokens", { key: t.key, body: { task_ids: [mine] } });
    expect(minted.status, JSON.stringify(minted.body)).toBe(201);
    const token = encodeURIComponent(minted.body.token);

    const scoped = await openTenantStream({ query: `token=${token}&last_event_id=0` });
    const backlog = await take(scoped, 1);
    expect(JSON.parse(backlog[0]!.data)).toMatchObject({ id: mine, status: "NOT_START" });

    await runAlarmWhenDue(taskStub(other));
    await runAlarmWhenDue(taskStub(mine));
    const [live] = await take(scoped, 1);
    expect(JSON.parse(live!.data)).toMatchObject({ id: mine, status: "SUCCESS" });
    await scoped.cancel();

    // An unscoped token sees both; the scoped stream was exactly its events of `mine`.
    const wide = await call("POST", "/v1/stream-tokens", { key: t.key, body: {} });
    const all = await openTenantStream({
      query: `token=${encodeURIComponent(wide.body.token)}&last_event_id=0`,
    });
    const events = await take(all, 4);
    expect(new Set(payloads(events).map((d) => d.id))).toEqual(new Set([mine, other]));
    const minesOnHub = events.filter((m) => JSON.parse(m.data).id === mine);
    expect([...backlog, live].map((m) => [m!.id, m!.data])).toEqual(minesOnHub.map((m) => [m.id, m.data]));
    await all.cancel();
  });

  it("the tenant stream needs a key or token, and a client cannot widen a token's scope with ?tasks=", async () => {
    expect((await call("GET", "/v1/events")).status).toBe(401);
    const t = await tenantWithKey();
    const mine = taskIdOf(await submit(t.key, "imagine", { prompt: "hub widen mine" }));
    const other = taskIdOf(await submit(t.key, "imagine", { prompt: "hub widen other" }));
    const minted = await call("POST", "/v1/stream-tokens", { key: t.key, body: { task_ids: [mine] } });
    const stream = await openTenantStream({
      query: `token=${encodeURIComponent(minted.body.token)}&tasks=${mine},${other}&last_event_id=0`,
    });
    await driveToEnd(other, t.key);
    await driveToEnd(mine, t.key);
    const events = await take(stream, 2);
    expect(payloads(events).map((d) => d.id)).toEqual([mine, mine]);
    await stream.cancel();
  });

  it("a token whose tasks have all finished, resuming with nothing new, answers 204 (EventSource stops)", async () => {
    const t = await tenantWithKey();
    const hub = env.TENANT_HUB.get(env.TENANT_HUB.idFromName(t.tenantId));
    const lastSeq = () =>
      runInDurableObject(hub, (_i, state) =>
        String(state.storage.sql.exec<{ s: number }>("SELECT MAX(seq) AS s FROM events").one().s),
      );
    const first = taskIdOf(await submit(t.key, "imagine", { prompt: "hub done 1" }));
    const second = taskIdOf(await submit(t.key, "imagine", { prompt: "hub done 2" }));
    const minted = await call("POST", "/v1/stream-tokens", {
      key: t.key,
      body: { task_ids: [first, second] },
    });
    const token = encodeURIComponent(minted.body.token);
    await driveToEnd(first, t.key);
    // One task still running: the stream stays open for it.
    const open = await openStream(`/v1/events?token=${token}`, {
      headers: { "last-event-id": await lastSeq() },
    });
    expect(open.status).toBe(200);
    await open.body?.cancel();
    await driveToEnd(second, t.key);
    const done = await openStream(`/v1/events?token=${token}`, {
      headers: { "last-event-id": await lastSeq() },
    });
    expect(done.status).toBe(204);
    // Behind by one: the missed event is replayed.
    const behind = await openStream(`/v1/events?token=${token}`, {
      headers: { "last-event-id": String(Number(await lastSeq()) - 1) },
    });
    expect(behind.status).toBe(200);
    await behind.body?.cancel();
  });

  it("a dashboard that went away is let go by the hub's heartbeats (or, drained by the runtime, at its age); a live one stays", async () => {
    const t = await tenantWithKey();
    const hub = env.TENANT_HUB.get(env.TENANT_HUB.idFromName(t.tenantId));
    const gone = await openTenantStream({ key: t.key });
    let live = await openTenantStream({ key: t.key });
    const first = taskIdOf(await submit(t.key, "imagine", { prompt: "hub gone 1" }));
    await take(gone, 1);
    await take(live, 1);
    expect(await hub.subscriberCount()).toBe(2);
    await gone.cancel();
    // The hub is never told; it keeps publishing into the dead stream...
    await driveToEnd(first, t.key);
    const [seen] = await take(live, 1);
    // ...until heartbeats find that nothing has been read there while bytes waited.
    for (let round = 0; round < 4; round++) {
      await heartbeat(hub);
      await live.nextComment("ping");
    }
    if ((await hub.subscriberCount()) === 2) {
      // Now and then workerd keeps reading the cancelled stream and discards the bytes: it
      // reads like a live one. Its age ends it, the live one with it; the live one resumes.
      await heartbeat(hub, Date.now() + PAST_MAX_AGE_MS);
      expect(await hub.subscriberCount()).toBe(0);
      await live.rest();
      expect(live.ended).toBe(true);
      live = await openTenantStream({ key: t.key, headers: { "last-event-id": String(seen!.id) } });
    }
    expect(await hub.subscriberCount()).toBe(1);
    const second = taskIdOf(await submit(t.key, "imagine", { prompt: "hub gone 2" }));
    // (A resumed stream first replays what the first task did after `seen`.)
    let next = await live.next();
    while (next && JSON.parse(next.data).id === first) next = await live.next();
    expect(JSON.parse(next!.data)).toMatchObject({ id: second, status: "NOT_START" });
    await live.cancel();
  });
});
