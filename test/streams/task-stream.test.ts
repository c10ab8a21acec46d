/**
 * GET /v1/midjourney/{task_id}/events: the task's SSE stream, read incrementally through
 * the gateway Worker. Time is driven with alarms only; the simulator runs at time scale 0,
 * so an imagine goes NOT_START → SUCCESS and an inpaint NOT_START → MODAL → SUBMITTED →
 * SUCCESS (the /modal call is the only thing that moves it off MODAL).
 */
import { describe, expect, it } from "vitest";
import { runAlarmWhenDue } from "../durable/clock-helpers";
import { call, driveToEnd, submit, taskStub, tenantWithKey } from "../helpers";
import {
  heartbeat,
  inpaintInModal,
  openStream,
  openTaskStream,
  PAST_MAX_AGE_MS,
  payloads,
  type SseMessage,
  sseReader,
  taskIdOf,
  view,
  waitFor,
} from "./sse";

/** An event exactly as the spec says: `id: <seq>`, `event: status`, data = GET's body now. */
async function expectCurrent(message: SseMessage | null, seq: number, taskId: string, key: string) {
  expect(message, "expected an event, the stream ended").not.toBeNull();
  expect(message!.id).toBe(String(seq));
  expect(message!.event).toBe("status");
  const current = await view(taskId, key);
  // Byte for byte what GET /v1/midjourney/{id} answers at this point.
  expect(message!.data).toBe(JSON.stringify(current));
  return current;
}

describe("task stream: order and content", () => {
  it("answers text/event-stream that is not cached or buffered, and tells the client how soon to retry", async () => {
    const t = await tenantWithKey();
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "stream headers" }));
    const stream = await openTaskStream(taskId, { key: t.key });
    expect(stream.response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(stream.response.headers.get("cache-control")).toContain("no-cache");
    expect(stream.response.headers.get("cache-control")).toContain("no-transform");
    await stream.next();
    expect(stream.retry).toBeGreaterThan(0);
    await stream.cancel();
  });

  it("gives a new subscriber the current state first, then every change as GET shows it, and ends after the terminal event", async () => {
    const t = await tenantWithKey();
    const task = await inpaintInModal(t.key, "stream order");
    const stream = await openTaskStream(task.taskId, { key: t.key });
    // Log so far: NOT_START (1), MODAL (2). A new subscriber starts from now, not from the log.
    const first = await expectCurrent(await stream.next(), 2, task.taskId, t.key);
    expect(first.status).toBe("MODAL");
    expect(first.progress).toBe("15%");

    await task.modal();
    const submitted = await expectCurrent(await stream.next(), 3, task.taskId, t.key);
    expect(submitted.status).toBe("SUBMITTED");

    await task.finish();
    const done = await expectCurrent(await stream.next(), 4, task.taskId, t.key);
    expect(done.status).toBe("SUCCESS");
    expect(done.progress).toBe("100%");
    expect(done.completed).toEqual(expect.any(Number));
    expect(done.image_urls).toEqual(expect.any(Array));
    // The terminal event is the last one: the server closes the stream.
    expect(await stream.next()).toBeNull();
    expect(stream.ended).toBe(true);
  });

  it("streams an imagine from NOT_START to SUCCESS, each event equal to GET at that moment", async () => {
    const t = await tenantWithKey();
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "stream imagine" }));
    const stream = await openTaskStream(taskId, { key: t.key });
    const first = await expectCurrent(await stream.next(), 1, taskId, t.key);
    expect(first).toMatchObject({ id: taskId, status: "NOT_START", progress: "0%", action: "IMAGINE" });
    await runAlarmWhenDue(taskStub(taskId));
    const done = await expectCurrent(await stream.next(), 2, taskId, t.key);
    expect(done.status).toBe("SUCCESS");
    expect(await stream.next()).toBeNull();
  });

  it("reports a failure as the terminal event and closes", async () => {
    const t = await tenantWithKey();
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "stream fails [sim:fail]" }));
    const stream = await openTaskStream(taskId, { key: t.key });
    expect((await expectCurrent(await stream.next(), 1, taskId, t.key)).status).toBe("NOT_START");
    await runAlarmWhenDue(taskStub(taskId));
    const failed = await expectCurrent(await stream.next(), 2, taskId, t.key);
    expect(failed.status).toBe("FAILURE");
    expect(failed.fail_reason).toEqual(expect.stringContaining("sim:fail"));
    expect(await stream.next()).toBeNull();
  });

  it("a subscriber to a finished task gets its final state once and the stream ends", async () => {
    const t = await tenantWithKey();
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "stream finished" }));
    await driveToEnd(taskId, t.key);
    const stream = await openTaskStream(taskId, { key: t.key });
    const events = await stream.rest();
    expect(events).toHaveLength(1);
    await expectCurrent(events[0]!, 2, taskId, t.key);
    expect(JSON.parse(events[0]!.data).status).toBe("SUCCESS");
  });

  it("replays the whole log in order from last_event_id=0, with ids 1..n and no gaps", async () => {
    const t = await tenantWithKey();
    const task = await inpaintInModal(t.key, "stream full log");
    await task.modal();
    const final = await task.finish();
    const stream = await openTaskStream(task.taskId, { key: t.key, query: "last_event_id=0" });
    const events = await stream.rest();
    expect(events.map((e) => e.id)).toEqual(["1", "2", "3", "4"]);
    expect(events.every((e) => e.event === "status")).toBe(true);
    const data = payloads(events);
    expect(data.map((d) => d.status)).toEqual(["NOT_START", "MODAL", "SUBMITTED", "SUCCESS"]);
    expect(data.map((d) => d.progress)).toEqual(["0%", "15%", "15%", "100%"]);
    expect(data.every((d) => d.id === task.taskId)).toBe(true);
    expect(events.at(-1)!.data).toBe(JSON.stringify(final));
  });
});

describe("task stream: resume after a cut", () => {
  it("Last-Event-ID replays every missed event in order, nothing twice, then follows live", async () => {
    const t = await tenantWithKey();
    const task = await inpaintInModal(t.key, "resume header");
    const first = await openTaskStream(task.taskId, { key: t.key });
    const seen = [await first.next()];
    await first.cancel(); // the cut
    await task.modal(); // seq 3 happens while nobody listens

    const resumed = await openTaskStream(task.taskId, {
      key: t.key,
      headers: { "last-event-id": seen.at(-1)!.id! },
    });
    const missed = await resumed.next();
    expect(missed!.id).toBe("3");
    expect(JSON.parse(missed!.data).status).toBe("SUBMITTED");
    await task.finish();
    const rest = await resumed.rest();
    const all = [...seen, missed, ...rest].map((e) => e!.id);
    expect(all).toEqual(["2", "3", "4"]);
    expect(await view(task.taskId, t.key)).toEqual(JSON.parse(rest.at(-1)!.data));
  });

  it("the last_event_id query does the same (a page's first connect)", async () => {
    const t = await tenantWithKey();
    const task = await inpaintInModal(t.key, "resume query");
    const first = await openTaskStream(task.taskId, { key: t.key, query: "last_event_id=0" });
    const seen = [await first.next()];
    expect(seen[0]!.id).toBe("1");
    await first.cancel();
    await task.modal();
    await task.finish();
    const resumed = await openTaskStream(task.taskId, {
      key: t.key,
      query: `last_event_id=${seen[0]!.id}`,
    });
    const rest = await resumed.rest();
    expect(rest.map((e) => e.id)).toEqual(["2", "3", "4"]);
    expect(payloads(rest).map((d) => d.status)).toEqual(["MODAL", "SUBMITTED", "SUCCESS"]);
  });

  it("the Last-Event-ID header wins over a stale last_event_id left in the URL (EventSource reconnects to the same URL)", async () => {
    const t = await tenantWithKey();
    const task = await inpaintInModal(t.key, "resume precedence");
    await task.modal();
    await task.finish();
    const resumed = await openTaskStream(task.taskId, {
      key: t.key,
      query: "last_event_id=0",
      headers: { "last-event-id": "3" },
    });
    const rest = await resumed.rest();
    expect(rest.map((e) => e.id)).toEqual(["4"]);
  });

  it("resuming from the last event of a finished task answers 204, so EventSource stops reconnecting", async () => {
    const t = await tenantWithKey();
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "resume at end" }));
    await driveToEnd(taskId, t.key);
    const all = await openTaskStream(taskId, { key: t.key, headers: { "last-event-id": "0" } });
    const events = await all.rest();
    const lastId = events.at(-1)!.id!;
    const resumed = await openStream(`/v1/midjourney/${taskId}/events`, {
      key: t.key,
      headers: { "last-event-id": lastId },
    });
    expect(resumed.status).toBe(204);
    expect(await resumed.text()).toBe("");
    // One event short of the end still replays that last event.
    const behind = await openTaskStream(taskId, {
      key: t.key,
      headers: { "last-event-id": String(Number(lastId) - 1) },
    });
    expect((await behind.rest()).map((m) => m.id)).toEqual([lastId]);
  });

  it("an unparsable Last-Event-ID counts as a new subscriber (current state)", async () => {
    const t = await tenantWithKey();
    const task = await inpaintInModal(t.key, "resume garbage");
    const stream = await openTaskStream(task.taskId, {
      key: t.key,
      headers: { "last-event-id": "not-a-number" },
    });
    await expectCurrent(await stream.next(), 2, task.taskId, t.key);
    await stream.cancel();
  });
});

describe("task stream: many and abandoned subscribers", () => {
  it("50 subscribers each get every event, in order, and all streams end", async () => {
    const t = await tenantWithKey();
    const task = await inpaintInModal(t.key, "fan out");
    const streams = await Promise.all(
      Array.from({ length: 50 }, () => openTaskStream(task.taskId, { key: t.key })),
    );
    const firsts = await Promise.all(streams.map((s) => s.next()));
    expect(firsts.map((e) => e!.id)).toEqual(Array(50).fill("2"));
    expect(await taskStub(task.taskId).subscriberCount()).toBe(50);

    await task.modal();
    await task.finish();
    const rests = await Promise.all(streams.map((s) => s.rest()));
    const expected = rests[0]!;
    expect(expected.map((e) => e.id)).toEqual(["3", "4"]);
    for (const rest of rests) {
      expect(rest.map((e) => e.id)).toEqual(["3", "4"]);
      expect(rest.map((e) => e.data)).toEqual(expected.map((e) => e.data));
    }
    expect(JSON.parse(expected.at(-1)!.data)).toEqual(await view(task.taskId, t.key));
    // Terminal: the object holds no subscriber any more.
    expect(await taskStub(task.taskId).subscriberCount()).toBe(0);
  });

  it("a subscriber that never reads and one that hung up hold up neither the others nor the task", async () => {
    const t = await tenantWithKey();
    const task = await inpaintInModal(t.key, "abandoned");
    // Never read at all (not even the first event).
    const neverRead = await openStream(`/v1/midjourney/${task.taskId}/events`, { key: t.key });
    expect(neverRead.status).toBe(200);
    // Reads one event, then hangs up.
    const quitter = sseReader(await openStream(`/v1/midjourney/${task.taskId}/events`, { key: t.key }));
    expect((await quitter.next())!.id).toBe("2");
    await quitter.cancel();
    const reader = await openTaskStream(task.taskId, { key: t.key });
    expect((await reader.next())!.id).toBe("2");

    await task.modal();
    expect((await reader.next())!.id).toBe("3");
    const final = await task.finish();
    expect(final.status).toBe("SUCCESS");
    const rest = await reader.rest();
    expect(rest.map((e) => e.id)).toEqual(["4"]);
    expect(JSON.parse(rest[0]!.data)).toEqual(final);
    // Nothing is left attached to the finished task, the unread stream included.
    await waitFor(async () => (await taskStub(task.taskId).subscriberCount()) === 0, "subscribers to go");
    // The never-read stream still holds every event it was sent, then its end.
    const leftover = await sseReader(neverRead).rest();
    expect(leftover.map((e) => e.id)).toEqual(["2", "3", "4"]);
  });

  it("a subscriber that hung up is let go within a few heartbeats; a live one is kept", async () => {
    const t = await tenantWithKey();
    const task = await inpaintInModal(t.key, "cancel frees");
    const quitter = await openTaskStream(task.taskId, { key: t.key });
    const live = await openTaskStream(task.taskId, { key: t.key });
    expect((await quitter.next())!.id).toBe("2");
    expect((await live.next())!.id).toBe("2");
    expect(await taskStub(task.taskId).subscriberCount()).toBe(2);
    // workerd never tells the object about the hang-up (the stream's cancel does not run)...
    await quitter.cancel();
    await task.modal();
    expect((await live.next())!.id).toBe("3");
    // ...so heartbeats notice a subscriber that reads nothing while bytes wait for it.
    for (let beat = 0; beat < 4; beat++) {
      await heartbeat(taskStub(task.taskId));
      await live.nextComment("ping");
    }
    let resumed = live;
    if ((await taskStub(task.taskId).subscriberCount()) === 2) {
      // Now and then workerd keeps reading the cancelled stream and discards the bytes: it
      // reads like a live one. Its age ends it, the live one with it; the live one resumes.
      await heartbeat(taskStub(task.taskId), Date.now() + PAST_MAX_AGE_MS);
      expect(await taskStub(task.taskId).subscriberCount()).toBe(0);
      expect(await live.rest()).toEqual([]);
      resumed = await openTaskStream(task.taskId, { key: t.key, headers: { "last-event-id": "3" } });
    }
    expect(await taskStub(task.taskId).subscriberCount()).toBe(1);
    await task.finish();
    expect((await resumed.rest()).map((e) => e.id)).toEqual(["4"]);
  });
});

describe("task stream: who may read it", () => {
  it("needs the sub-key (or a stream token)", async () => {
    const t = await tenantWithKey();
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "stream auth" }));
    const res = await call("GET", `/v1/midjourney/${taskId}/events`);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("missing_api_key");
    const wrong = await call("GET", `/v1/midjourney/${taskId}/events`, { key: "sk-mjg-not-a-key" });
    expect(wrong.status).toBe(401);
  });

  it("another tenant's task, an unknown task and a malformed id are all 404 task_not_found", async () => {
    const owner = await tenantWithKey();
    const other = await tenantWithKey();
    const taskId = taskIdOf(await submit(owner.key, "imagine", { prompt: "stream privacy" }));
    for (const path of [
      `/v1/midjourney/${taskId}/events`,
      "/v1/midjourney/task_01KV52C0TEJSYZMCG0NCS4YWKK/events",
      "/v1/midjourney/not-a-task/events",
    ]) {
      const res = await call("GET", path, { key: other.key });
      expect(res.status, path).toBe(404);
      expect(res.body.error.code, path).toBe("task_not_found");
    }
    // The owner still reads it.
    const stream = await openTaskStream(taskId, { key: owner.key });
    expect((await stream.next())!.id).toBe("1");
    await stream.cancel();
  });

  it("a client cannot pose as another tenant with the internal tenant header", async () => {
    const owner = await tenantWithKey();
    const other = await tenantWithKey();
    const taskId = taskIdOf(await submit(owner.key, "imagine", { prompt: "stream spoof" }));
    const res = await call("GET", `/v1/midjourney/${taskId}/events`, {
      key: other.key,
      headers: { "x-gateway-tenant": owner.tenantId },
    });
    expect(res.status).toBe(404);
  });
});
