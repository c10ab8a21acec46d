/**
 * The fan-out itself, without a Durable Object around it: framing, backlog, filters,
 * closing, heartbeats, and how stalled or dead subscribers are let go without holding
 * up the others.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  formatSse,
  HEARTBEAT_MS,
  lastEventId,
  SSE_HEADERS,
  SseBroadcaster,
  type SseEvent,
  STREAM_MAX_AGE_JITTER_MS,
  STREAM_MAX_AGE_MS,
} from "../../src/durable/sse-broadcaster";
import { sseReader } from "./sse";

const event = (id: number, data: unknown = { id: "task_x", n: id }): SseEvent => ({
  id,
  event: "status",
  data,
});

/** A reader that reads all the time, as a live client does: its queue stays empty. */
function collect(stream: ReadableStream<Uint8Array>) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  const state = { text: "", done: false, error: null as unknown };
  void (async () => {
    try {
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) break;
        state.text += decoder.decode(chunk.value, { stream: true });
      }
    } catch (error) {
      state.error = error;
    }
    state.done = true;
  })();
  return state;
}

/** Lets pending reads settle. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

afterEach(() => {
  vi.useRealTimers();
});

describe("framing", () => {
  it("formats one event as id, event and a single JSON data line", () => {
    const text = new TextDecoder().decode(formatSse(event(7, { id: "task_a", prompt: "two\nlines" })));
    expect(text).toBe(`id: 7\nevent: status\ndata: {"id":"task_a","prompt":"two\\nlines"}\n\n`);
  });

  it("stream headers say event-stream, no caching, no proxy buffering", () => {
    expect(SSE_HEADERS["content-type"]).toMatch(/^text\/event-stream/);
    expect(SSE_HEADERS["cache-control"]).toContain("no-cache");
    expect(SSE_HEADERS["x-accel-buffering"]).toBe("no");
  });
});

describe("lastEventId", () => {
  const at = (query: string, headers: Record<string, string> = {}) =>
    lastEventId(new Request(`http://x/events${query}`, { headers }));

  it("reads the header, then last_event_id, then after; -1 when absent or unusable", () => {
    expect(at("")).toBe(-1);
    expect(at("", { "last-event-id": "12" })).toBe(12);
    expect(at("?last_event_id=5")).toBe(5);
    expect(at("?after=3")).toBe(3);
    expect(at("?last_event_id=5", { "last-event-id": "9" })).toBe(9);
    expect(at("?last_event_id=5&after=1")).toBe(5);
    expect(at("?last_event_id=0")).toBe(0);
    expect(at("?last_event_id=abc")).toBe(-1);
    expect(at("?last_event_id=-4")).toBe(-1);
    expect(at("", { "last-event-id": "" })).toBe(-1);
  });
});

describe("subscribe and broadcast", () => {
  it("sends the connect comment and retry hint, the backlog, then live events in order", async () => {
    const hub = new SseBroadcaster();
    const stream = sseReader(new Response(hub.subscribe([event(1), event(2)])));
    expect(hub.size).toBe(1);
    expect((await stream.next())!.id).toBe("1");
    expect((await stream.next())!.id).toBe("2");
    expect(stream.retry).toBe(2000);
    hub.broadcast(event(3));
    hub.broadcast(event(4));
    expect((await stream.next())!.id).toBe("3");
    expect((await stream.next())!.id).toBe("4");
    hub.closeAll();
    expect(await stream.next()).toBeNull();
    expect(hub.size).toBe(0);
  });

  it("closeAfterBacklog ends right after the backlog and never joins the broadcast", async () => {
    const hub = new SseBroadcaster();
    const stream = sseReader(new Response(hub.subscribe([event(9)], { closeAfterBacklog: true })));
    expect(hub.size).toBe(0);
    hub.broadcast(event(10));
    expect((await stream.rest()).map((e) => e.id)).toEqual(["9"]);
  });

  it("a filter keeps other events away from that subscriber only", async () => {
    const hub = new SseBroadcaster();
    const onlyA = sseReader(
      new Response(hub.subscribe([], { filter: (e) => (e.data as { id: string }).id === "task_a" })),
    );
    const all = sseReader(new Response(hub.subscribe([])));
    hub.broadcast(event(1, { id: "task_b" }));
    hub.broadcast(event(2, { id: "task_a" }));
    hub.closeAll();
    expect((await onlyA.rest()).map((e) => e.id)).toEqual(["2"]);
    expect((await all.rest()).map((e) => e.id)).toEqual(["1", "2"]);
  });

  it("a cancelled subscriber is removed", async () => {
    const hub = new SseBroadcaster();
    const stream = hub.subscribe([]);
    expect(hub.size).toBe(1);
    await stream.cancel();
    expect(hub.size).toBe(0);
    hub.broadcast(event(1)); // must not throw
  });
});

describe("heartbeats and stalled subscribers", () => {
  it("pings every 15 s while someone listens, and stops when nobody does", async () => {
    vi.useFakeTimers();
    expect(HEARTBEAT_MS).toBe(15_000);
    const hub = new SseBroadcaster();
    const stream = sseReader(new Response(hub.subscribe([])));
    vi.advanceTimersByTime(HEARTBEAT_MS - 1);
    hub.broadcast(event(1));
    await stream.next();
    expect(stream.comments.filter((c) => c === "ping")).toHaveLength(0);
    vi.advanceTimersByTime(1);
    hub.broadcast(event(2));
    await stream.next();
    expect(stream.comments.filter((c) => c === "ping")).toHaveLength(1);
    hub.closeAll();
    vi.advanceTimersByTime(0); // the broadcasts' one-shot reports (sse_broadcast) are written
    expect(vi.getTimerCount()).toBe(0); // and no heartbeat is left
  });

  it("a subscriber that reads nothing for a whole beat while bytes wait is dropped; readers are kept", async () => {
    const hub = new SseBroadcaster({ heartbeatMs: 3_600_000 });
    const live = collect(hub.subscribe([]));
    const dead = hub.subscribe([]).getReader();
    const slow = hub.subscribe([]).getReader();
    for (let round = 1; round <= 4; round++) {
      hub.broadcast(event(round));
      hub.broadcast(event(round + 100));
      // The slow reader takes one chunk per round: behind, but it does read.
      await slow.read();
      await settle();
      hub.beat();
    }
    expect(hub.size).toBe(2);
    await expect(dead.read()).rejects.toThrow("dropped");
    hub.broadcast(event(99));
    await settle();
    expect(live.text).toContain("id: 99");
    expect(live.text.match(/^id: /gm)).toHaveLength(9);
    expect(live.error).toBeNull();
  });

  it("a stream past its maximum age ends cleanly at the next beat (the client resumes); a younger one stays", async () => {
    expect(STREAM_MAX_AGE_MS).toBe(600_000);
    vi.useFakeTimers({ toFake: ["Date"] });
    const opened = Date.parse("2026-12-06T00:00:00Z");
    vi.setSystemTime(opened);
    const hub = new SseBroadcaster({ heartbeatMs: 3_600_000, maxAgeJitterMs: 0 });
    const old = collect(hub.subscribe([]));
    vi.setSystemTime(opened + 60_000);
    const young = collect(hub.subscribe([]));
    hub.broadcast(event(1));
    await settle();
    hub.beat(opened + STREAM_MAX_AGE_MS - 1);
    expect(hub.size).toBe(2);
    hub.beat(opened + STREAM_MAX_AGE_MS);
    await settle();
    expect(hub.size).toBe(1);
    expect(old.done).toBe(true);
    expect(old.error).toBeNull(); // closed, not errored: an EventSource reconnects and resumes
    expect(old.text).toContain("id: 1");
    expect(young.done).toBe(false);
    hub.broadcast(event(2));
    await settle();
    expect(young.text).toContain("id: 2");
    hub.closeAll();
  });

  it("streams opened together end spread over the jitter, not at one beat", async () => {
    expect(STREAM_MAX_AGE_JITTER_MS).toBe(120_000);
    vi.useFakeTimers({ toFake: ["Date"] });
    const opened = Date.parse("2026-12-06T00:00:00Z");
    vi.setSystemTime(opened);
    const hub = new SseBroadcaster({ heartbeatMs: 3_600_000 });
    const streams = Array.from({ length: 50 }, () => collect(hub.subscribe([])));
    hub.beat(opened + STREAM_MAX_AGE_MS - 1);
    expect(hub.size).toBe(50);
    hub.beat(opened + STREAM_MAX_AGE_MS + STREAM_MAX_AGE_JITTER_MS / 2);
    expect(hub.size).toBeGreaterThan(0);
    expect(hub.size).toBeLessThan(50);
    hub.beat(opened + STREAM_MAX_AGE_MS + STREAM_MAX_AGE_JITTER_MS);
    expect(hub.size).toBe(0);
    await settle();
    expect(streams.every((s) => s.done && s.error === null)).toBe(true);
  });

  it("an idle subscriber with nothing queued is never dropped by beats", async () => {
    const hub = new SseBroadcaster({ heartbeatMs: 3_600_000 });
    const reader = collect(hub.subscribe([]));
    for (let i = 0; i < 5; i++) {
      await settle();
      hub.beat();
    }
    await settle();
    expect(hub.size).toBe(1);
    expect(reader.text.match(/: ping/g)).toHaveLength(5);
  });

  it("a subscriber whose queue outgrows the limit is dropped at once; the others get every event", async () => {
    const hub = new SseBroadcaster({ maxQueuedBytes: 4_096 });
    const stuck = hub.subscribe([]).getReader();
    const reader = collect(hub.subscribe([]));
    const big = { id: "task_x", blob: "x".repeat(1_000) };
    for (let i = 1; i <= 10; i++) {
      hub.broadcast(event(i, big));
      await settle();
    }
    expect(hub.size).toBe(1);
    await expect(stuck.read()).rejects.toThrow("dropped");
    hub.closeAll();
    await settle();
    expect(reader.done).toBe(true);
    const ids = [...reader.text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    expect(ids).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });
});

describe("the broadcast's own report", () => {
  it("logs one sse_broadcast line per event with subscribers: how many it reached, its bytes and the object's turn", async () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    try {
      const broadcaster = new SseBroadcaster();
      broadcaster.broadcast(event(1), { task_id: "task_x" });
      await settle();
      expect(log).not.toHaveBeenCalled(); // nobody listens: nothing to report
      const streams = [0, 1, 2].map(() => collect(broadcaster.subscribe([])));
      broadcaster.subscribe([], { filter: (e) => e.id !== 2 });
      broadcaster.broadcast(event(2), { task_id: "task_x" });
      await settle();
      await settle();
      const lines = log.mock.calls.map(([line]) => JSON.parse(String(line)));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({
        event: "sse_broadcast",
        task_id: "task_x",
        seq: 2,
        subscribers: 3,
        bytes: formatSse(event(2)).byteLength,
      });
      expect(lines[0].turn_ms).toBeGreaterThanOrEqual(0);
      expect(streams.every((s) => s.text.includes("id: 2\n"))).toBe(true);
      broadcaster.closeAll();
    } finally {
      log.mockRestore();
    }
  });
});
