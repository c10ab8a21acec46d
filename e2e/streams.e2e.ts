/**
 * Task streams with a real EventSource client (the `eventsource` package, as a Node
 * server would use it, sending the sub-key through its custom fetch) against the
 * `npm start` stack: real alarms, the simulator at time scale 0.02.
 */
import { EventSource, type EventSourceFetchInit } from "eventsource";
import { describe, expect, it } from "vitest";
import { api, gatewayUrl, tenantWithKey } from "./support";

interface Received {
  id: string;
  data: Record<string, any>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function until<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await check();
    if (value !== undefined) return value;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const taskView = async (taskId: string, key: string) => {
  const res = await api("GET", `/v1/midjourney/${taskId}`, { key });
  expect(res.status).toBe(200);
  return res.body as Record<string, any>;
};

async function submitted(key: string, action: string, body: unknown): Promise<string> {
  const res = await api("POST", `/v1/midjourney/generations/${action}`, { key, body });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.data[0].task_id;
}

const finished = (taskId: string, key: string) =>
  until(`${taskId} to finish`, async () => {
    const view = await taskView(taskId, key);
    return ["SUCCESS", "FAILURE", "CANCEL"].includes(view.status) ? view : undefined;
  });

/**
 * An EventSource on a task stream that authenticates with the sub-key, records every
 * request it makes (to see Last-Event-ID on reconnects) and can cut its connection.
 */
function follow(taskId: string, key: string, query = "") {
  const received: Received[] = [];
  const requests: Array<Record<string, string>> = [];
  const errors: string[] = [];
  let cutCurrent: (() => void) | null = null;
  const source = new EventSource(`${gatewayUrl()}/v1/midjourney/${taskId}/events${query}`, {
    fetch: async (input: string | URL, init: EventSourceFetchInit) => {
      const headers: Record<string, string> = { ...init.headers, Authorization: `Bearer ${key}` };
      requests.push(headers);
      const response = await fetch(input, { ...init, headers });
      if (!response.body) return response;
      const upstream = response.body.getReader();
      let controllerRef: ReadableStreamDefaultController<Uint8Array>;
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controllerRef = controller;
        },
        async pull(controller) {
          const chunk = await upstream.read().catch(() => ({ done: true, value: undefined }));
          if (chunk.done) controller.close();
          else controller.enqueue(chunk.value);
        },
        cancel: () => upstream.cancel(),
      });
      // A network cut: the client sees its stream end, the server its socket go away.
      cutCurrent = () => {
        try {
          controllerRef.close();
        } catch {}
        void upstream.cancel().catch(() => {});
      };
      return new Response(body, { status: response.status, headers: response.headers });
    },
  });
  source.addEventListener("status", (event) => {
    received.push({
      id: (event as MessageEvent).lastEventId,
      data: JSON.parse((event as MessageEvent).data),
    });
  });
  source.addEventListener("error", (event) => {
    errors.push(String((event as { message?: string }).message ?? "error"));
  });
  return {
    source,
    received,
    requests,
    errors,
    cut: () => cutCurrent?.(),
    waitFor: (what: string, check: (events: Received[]) => boolean, timeoutMs?: number) =>
      until(what, () => (check(received) ? true : undefined), timeoutMs),
  };
}

const statusIs = (status: string) => (events: Received[]) => events.some((e) => e.data.status === status);

/** An inpaint task waiting in MODAL (its log: NOT_START 1, MODAL 2). */
async function inpaintInModal(key: string) {
  const grid = await submitted(key, "imagine", { prompt: "e2e stream parent" });
  expect((await finished(grid, key)).status).toBe("SUCCESS");
  const upscale = await submitted(key, "upscale", { task_id: grid, index: 1 });
  expect((await finished(upscale, key)).status).toBe("SUCCESS");
  const inpaint = await submitted(key, "inpaint", { task_id: upscale });
  await until("MODAL", async () => ((await taskView(inpaint, key)).status === "MODAL" ? true : undefined));
  return inpaint;
}

describe("task stream with a real EventSource", () => {
  it("follows an imagine to SUCCESS: ordered ids, every event the task object, the last equal to GET", async () => {
    const { key } = await tenantWithKey();
    const taskId = await submitted(key, "imagine", { prompt: "e2e follow" });
    const stream = follow(taskId, key);
    try {
      await stream.waitFor("SUCCESS", statusIs("SUCCESS"));
      const final = await taskView(taskId, key);
      expect(final.status).toBe("SUCCESS");
      const ids = stream.received.map((e) => Number(e.id));
      expect(ids.every((id, i) => i === 0 || id === ids[i - 1]! + 1)).toBe(true);
      expect(stream.received.every((e) => e.data.id === taskId)).toBe(true);
      expect(stream.received[0]!.data.status).toMatch(/^(NOT_START|SUBMITTED|IN_PROGRESS)$/);
      expect(stream.received.at(-1)!.data).toEqual(final);
      expect(final.image_urls).toHaveLength(4);
      // The server ends the stream after the terminal event (EventSource reports it).
      await until("the stream to end", () => (stream.errors.length > 0 ? true : undefined), 10_000);
      expect(stream.received.filter((e) => e.data.status === "SUCCESS")).toHaveLength(1);
    } finally {
      stream.source.close();
    }
  });

  it("after the terminal event, EventSource's own reconnect gets 204 and it stops for good (CLOSED)", async () => {
    const { key } = await tenantWithKey();
    const taskId = await submitted(key, "imagine", { prompt: "e2e stops" });
    const stream = follow(taskId, key);
    try {
      await stream.waitFor("SUCCESS", statusIs("SUCCESS"));
      await until(
        "EventSource to close",
        () => (stream.source.readyState === EventSource.CLOSED ? true : undefined),
        15_000,
      );
      // It reconnected once with the last id it saw, got 204, and asked no more.
      const reconnects = stream.requests.filter((h) => h["Last-Event-ID"] ?? h["last-event-id"]);
      expect(reconnects.length).toBe(1);
      const seen = stream.requests.length;
      await new Promise((resolve) => setTimeout(resolve, 4_000));
      expect(stream.requests.length).toBe(seen);
      expect(stream.received.filter((e) => e.data.status === "SUCCESS")).toHaveLength(1);
    } finally {
      stream.source.close();
    }
  });

  it("a cut connection reconnects by itself with Last-Event-ID and gets the missed events once", async () => {
    const { key } = await tenantWithKey();
    const taskId = await inpaintInModal(key);
    const stream = follow(taskId, key);
    try {
      await stream.waitFor("MODAL", statusIs("MODAL"));
      expect(stream.received.map((e) => e.id)).toEqual(["2"]);
      stream.cut();
      // While it is away (it waits the server's retry: 2 s), the task moves on.
      const modal = await api("POST", "/v1/midjourney/generations/modal", {
        key,
        body: { task_id: taskId, prompt: "e2e repaint" },
      });
      expect(modal.status, JSON.stringify(modal.body)).toBe(200);
      await stream.waitFor("SUCCESS", statusIs("SUCCESS"));
      const final = await taskView(taskId, key);
      expect(stream.requests.length).toBeGreaterThanOrEqual(2);
      expect(stream.requests[0]!["Last-Event-ID"]).toBeUndefined();
      expect(stream.requests[1]!["Last-Event-ID"]).toBe("2");
      const ids = stream.received.map((e) => Number(e.id));
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids).toEqual(ids.map((_, i) => i + 2));
      const statuses = stream.received.map((e) => e.data.status);
      expect(statuses[0]).toBe("MODAL");
      expect(statuses).toContain("SUBMITTED");
      expect(statuses.at(-1)).toBe("SUCCESS");
      expect(stream.received.at(-1)!.data).toEqual(final);
    } finally {
      stream.source.close();
    }
  });

  it("closed mid-task and reopened later with the last id: every missed event, in order, none twice", async () => {
    const { key } = await tenantWithKey();
    const taskId = await inpaintInModal(key);
    const first = follow(taskId, key);
    await first.waitFor("MODAL", statusIs("MODAL"));
    first.source.close();
    const lastId = first.received.at(-1)!.id;
    expect(lastId).toBe("2");

    const modal = await api("POST", "/v1/midjourney/generations/modal", {
      key,
      body: { task_id: taskId, prompt: "e2e repaint later" },
    });
    expect(modal.status).toBe(200);
    const final = await finished(taskId, key);
    expect(final.status).toBe("SUCCESS");

    // A page that kept the id reopens with it in the URL (EventSource cannot set the header on a new object).
    const second = follow(taskId, key, `?last_event_id=${lastId}`);
    try {
      await second.waitFor("SUCCESS", statusIs("SUCCESS"));
      await until("the stream to end", () => (second.errors.length > 0 ? true : undefined), 10_000);
      const all = [...first.received, ...second.received];
      const ids = all.map((e) => Number(e.id));
      expect(ids).toEqual(ids.map((_, i) => i + 2));
      expect(second.received[0]!.data.status).toBe("SUBMITTED");
      expect(second.received.at(-1)!.data).toEqual(final);
      // The full log, replayed from 0, is exactly what the two connections saw after the first event.
      const log = follow(taskId, key, "?last_event_id=0");
      try {
        await log.waitFor("the whole log", statusIs("SUCCESS"));
        expect(log.received.map((e) => e.id)).toEqual(["1", ...all.map((e) => e.id)]);
        expect(log.received.slice(1).map((e) => e.data)).toEqual(all.map((e) => e.data));
      } finally {
        log.source.close();
      }
    } finally {
      second.source.close();
    }
  });
});
