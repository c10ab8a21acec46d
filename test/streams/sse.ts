/**
 * Reading Server-Sent Events from the gateway inside workerd: a small incremental parser
 * over the response body reader (a live stream is never awaited whole), plus helpers that
 * build tasks with several distinct status changes under the simulator's time scale 0.
 */
import { runInDurableObject, SELF } from "cloudflare:test";
import { expect } from "vitest";
import {
  type SseBroadcaster,
  STREAM_MAX_AGE_JITTER_MS,
  STREAM_MAX_AGE_MS,
} from "../../src/durable/sse-broadcaster";
import { runAlarmWhenDue } from "../durable/clock-helpers";
import { call, driveToEnd, submit, taskStub } from "../helpers";

export const GATEWAY = "http://gateway.test";

export interface SseMessage {
  id: string | null;
  event: string;
  data: string;
}

export interface SseReader {
  response: Response;
  /** Comments (": ping", ": connected") seen so far, without the colon. */
  comments: string[];
  /** The retry: value, if the server sent one. */
  retry: number | null;
  /** The next event; rejects after `timeoutMs` without one. Resolves null when the stream ended. */
  next(timeoutMs?: number): Promise<SseMessage | null>;
  /** Reads until the stream ends, returning every remaining event. */
  rest(timeoutMs?: number): Promise<SseMessage[]>;
  /** Reads until one more comment equal to `comment` (e.g. "ping") has arrived. */
  nextComment(comment: string, timeoutMs?: number): Promise<void>;
  /** Whether the stream has ended (after a next() that returned null). */
  readonly ended: boolean;
  cancel(): Promise<void>;
}

const decoder = new TextDecoder();

/** Wraps a streaming response in an incremental SSE parser (per the HTML spec's rules). */
export function sseReader(response: Response): SseReader {
  const reader = response.body!.getReader();
  let buffer = "";
  let ended = false;
  const queue: SseMessage[] = [];
  const comments: string[] = [];
  let retry: number | null = null;
  let id: string | null = null;
  let event = "";
  let data: string[] = [];
  let sawField = false;

  const consumeLines = () => {
    for (;;) {
      const newline = buffer.search(/\r\n|\n|\r/);
      if (newline < 0) return;
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
      if (line === "") {
        if (sawField && data.length) queue.push({ id, event: event || "message", data: data.join("\n") });
        event = "";
        data = [];
        sawField = false;
        continue;
      }
      if (line.startsWith(":")) {
        comments.push(line.slice(1).trim());
        continue;
      }
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      sawField = true;
      if (field === "id") id = value;
      else if (field === "event") event = value;
      else if (field === "data") data.push(value);
      else if (field === "retry" && /^\d+$/.test(value)) retry = Number(value);
    }
  };

  const pull = async (timeoutMs: number): Promise<boolean> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no SSE data within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const chunk = await Promise.race([reader.read(), timeout]);
      if (chunk.done) {
        ended = true;
        return false;
      }
      buffer += decoder.decode(chunk.value, { stream: true });
      consumeLines();
      return true;
    } finally {
      clearTimeout(timer);
    }
  };

  const api: SseReader = {
    response,
    comments,
    get retry() {
      return retry;
    },
    get ended() {
      return ended && queue.length === 0;
    },
    async next(timeoutMs = 5_000) {
      while (queue.length === 0) {
        if (ended) return null;
        await pull(timeoutMs);
      }
      return queue.shift()!;
    },
    async nextComment(comment, timeoutMs = 5_000) {
      const count = () => comments.filter((c) => c === comment).length;
      const target = count() + 1;
      while (count() < target) {
        if (ended) throw new Error(`stream ended before the comment ${comment}`);
        await pull(timeoutMs);
      }
    },
    async rest(timeoutMs = 5_000) {
      const out: SseMessage[] = [];
      for (;;) {
        const message = await api.next(timeoutMs);
        if (message === null) return out;
        out.push(message);
      }
    },
    async cancel() {
      ended = true;
      await reader.cancel().catch(() => {});
    },
  } as SseReader;
  return api;
}

/** Opens a stream through the gateway (the Worker's own fetch handler). */
export async function openStream(
  path: string,
  options: { key?: string; headers?: Record<string, string> } = {},
): Promise<Response> {
  const headers: Record<string, string> = { accept: "text/event-stream", ...(options.headers ?? {}) };
  if (options.key) headers.authorization = `Bearer ${options.key}`;
  return SELF.fetch(`${GATEWAY}${path}`, { headers });
}

export async function openTaskStream(
  taskId: string,
  options: { key?: string; headers?: Record<string, string>; query?: string } = {},
): Promise<SseReader> {
  const response = await openStream(
    `/v1/midjourney/${taskId}/events${options.query ? `?${options.query}` : ""}`,
    options,
  );
  expect(response.status, await peekError(response)).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
  return sseReader(response);
}

/** For assertion messages: the body of a non-200 answer (consumes it only then). */
async function peekError(response: Response): Promise<string> {
  return response.status === 200 ? "" : await response.clone().text();
}

/** The events' `data` as objects (each must be JSON). */
export const payloads = (messages: SseMessage[]) => messages.map((m) => JSON.parse(m.data));

export async function view(taskId: string, key: string) {
  const res = await call("GET", `/v1/midjourney/${taskId}`, { key });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as Record<string, unknown>;
}

export function taskIdOf(res: { status: number; body: any }): string {
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.data[0].task_id as string;
}

/** A finished imagine grid, then its upscale (both SUCCESS): a parent for an inpaint. */
export async function upscaledParent(key: string, prompt: string): Promise<string> {
  const grid = taskIdOf(await submit(key, "imagine", { prompt }));
  expect((await driveToEnd(grid, key)).status).toBe("SUCCESS");
  const upscale = taskIdOf(await submit(key, "upscale", { task_id: grid, index: 1 }));
  expect((await driveToEnd(upscale, key)).status).toBe("SUCCESS");
  return upscale;
}

/**
 * An inpaint task parked in MODAL: its log is NOT_START (seq 1), MODAL (seq 2). Then
 * `modal()` moves it to SUBMITTED (seq 3) and `finish()` polls it to SUCCESS (seq 4).
 * Under the simulator's time scale 0 this is the longest run of distinct events a task has.
 */
export async function inpaintInModal(key: string, prompt: string) {
  const parent = await upscaledParent(key, prompt);
  const res = await submit(key, "inpaint", { task_id: parent });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body.data[0].status).toBe("modal");
  const taskId = res.body.data[0].task_id as string;
  expect((await view(taskId, key)).status).toBe("MODAL");
  return {
    taskId,
    async modal() {
      const modal = await submit(key, "modal", { task_id: taskId, prompt: `${prompt} repainted` });
      expect(modal.status, JSON.stringify(modal.body)).toBe(200);
      expect((await view(taskId, key)).status).toBe("SUBMITTED");
    },
    async finish() {
      for (let i = 0; i < 10; i++) {
        const current = await view(taskId, key);
        if (current.status === "SUCCESS") return current;
        await runAlarmWhenDue(taskStub(taskId));
      }
      throw new Error(`task ${taskId} did not finish`);
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` every 20 ms until it holds; fails naming `what` after `tries` rounds. */
export async function waitFor(check: () => Promise<boolean>, what: string, tries = 100) {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Later than any stream's age limit (the maximum age and the whole jitter). */
export const PAST_MAX_AGE_MS = STREAM_MAX_AGE_MS + STREAM_MAX_AGE_JITTER_MS;

/** What an object's 15 s heartbeat timer does (a TaskObject's or a TenantHub's), run now or as if at `now`. */
export async function heartbeat(stub: Parameters<typeof runInDurableObject>[0], now?: number) {
  await runInDurableObject(stub, (instance) => {
    const owner = instance as unknown as { subscribers?: SseBroadcaster; broadcaster?: SseBroadcaster };
    (owner.subscribers ?? owner.broadcaster)!.beat(now);
  });
}
