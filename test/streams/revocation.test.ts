/**
 * Revocation bites open streams too: a stream already open when its key is revoked,
 * disabled or expired (or its tenant suspended) is ended by the Worker that serves it
 * within KEY_CACHE_SECONDS (0 here: the check runs every 500 ms and reads D1 each time),
 * and the reconnect gets the refusal. Streams of other keys stay open.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { SseBroadcaster } from "../../src/durable/sse-broadcaster";
import { streamCheckMs, streamStillAuthorized } from "../../src/middleware/auth";
import { guardStream } from "../../src/middleware/stream-guard";
import { call, submit, tenantWithKey } from "../helpers";
import {
  heartbeat,
  openStream,
  openTaskStream,
  PAST_MAX_AGE_MS,
  type SseReader,
  sseReader,
  taskIdOf,
} from "./sse";

/** Resolves true once the stream ends (reading past whatever events are still queued). */
async function endsWithin(reader: SseReader, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      if ((await reader.next(Math.max(1, deadline - Date.now()))) === null) return true;
    }
  } catch {
    // no data before the deadline: still open
  }
  return false;
}

async function mint(key: string, taskIds?: string[]) {
  const res = await call("POST", "/v1/stream-tokens", { key, body: taskIds ? { task_ids: taskIds } : {} });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.token as string;
}

async function openTenantStream(options: { key?: string; query?: string }): Promise<SseReader> {
  const response = await openStream(`/v1/events${options.query ? `?${options.query}` : ""}`, options);
  expect(response.status).toBe(200);
  return sseReader(response);
}

async function secondKey(tenantId: string): Promise<string> {
  const res = await call("POST", `/admin/tenants/${tenantId}/keys`, { admin: true, body: { name: "other" } });
  expect(res.status).toBe(201);
  return res.body.key as string;
}

describe("open streams end when their authority ends", () => {
  for (const [change, body, method] of [
    ["revoked", undefined, "DELETE"],
    ["disabled", { status: "disabled" }, "PATCH"],
    ["expired", { expires_at: new Date(Date.now() + 1500).toISOString() }, "PATCH"],
  ] as const) {
    it(`a key ${change} while its streams are open: its task, tenant and token streams end; another key's stay`, async () => {
      const t = await tenantWithKey();
      const other = await secondKey(t.tenantId);
      // A MODAL-less long task: the simulator keeps it open while no alarm is run here.
      const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: `open stream ${change}` }));
      const token = await mint(t.key, [taskId]);

      const byKey = await openTaskStream(taskId, { key: t.key });
      const byToken = await openTaskStream(taskId, { query: `token=${encodeURIComponent(token)}` });
      const tenantWide = await openTenantStream({ key: t.key });
      const bystander = await openTaskStream(taskId, { key: other });

      const res = await call(method, `/admin/tenants/${t.tenantId}/keys/${t.keyId}`, { admin: true, body });
      expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);

      for (const reader of [byKey, byToken, tenantWide]) expect(await endsWithin(reader, 8_000)).toBe(true);
      expect(await endsWithin(bystander, 1_500)).toBe(false);
      await bystander.cancel();

      // The reconnect is refused by the auth middleware.
      const again = await openStream(`/v1/midjourney/${taskId}/events`, { key: t.key });
      expect(again.status).toBeGreaterThanOrEqual(401);
      expect(again.status).toBeLessThanOrEqual(403);
      await again.body?.cancel();
    });
  }

  it("suspending the tenant ends its sub-key and operator-token streams", async () => {
    const t = await tenantWithKey();
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "suspend open" }));
    const operator = await call("POST", `/admin/tenants/${t.tenantId}/stream-tokens`, {
      admin: true,
      body: {},
    });
    expect(operator.status).toBe(201);
    const byKey = await openTaskStream(taskId, { key: t.key });
    const byOperatorToken = await openTenantStream({
      query: `token=${encodeURIComponent(operator.body.token)}`,
    });
    const unrelated = await tenantWithKey();
    const unrelatedTask = taskIdOf(await submit(unrelated.key, "imagine", { prompt: "other tenant" }));
    const bystander = await openTaskStream(unrelatedTask, { key: unrelated.key });

    await call("PATCH", `/admin/tenants/${t.tenantId}`, { admin: true, body: { status: "suspended" } });
    expect(await endsWithin(byKey, 8_000)).toBe(true);
    expect(await endsWithin(byOperatorToken, 8_000)).toBe(true);
    expect(await endsWithin(bystander, 1_500)).toBe(false);
    await bystander.cancel();
  });

  it("revoking a key leaves the operator's token streams of its tenant open", async () => {
    const t = await tenantWithKey();
    const operator = await call("POST", `/admin/tenants/${t.tenantId}/stream-tokens`, {
      admin: true,
      body: {},
    });
    const stream = await openTenantStream({ query: `token=${encodeURIComponent(operator.body.token)}` });
    await call("DELETE", `/admin/tenants/${t.tenantId}/keys/${t.keyId}`, { admin: true });
    expect(await endsWithin(stream, 1_500)).toBe(false);
    await stream.cancel();
  });
});

describe("the authority check", () => {
  it("is shared per key for half of KEY_CACHE_SECONDS, then read again", async () => {
    const t = await tenantWithKey();
    const scope = { tenantId: t.tenantId, taskIds: null, corsOrigins: [], keyId: t.keyId };
    const cacheMs = 10_000;
    const now = Date.now();
    expect(await streamStillAuthorized(env.DB, scope, cacheMs, now)).toBe(true);
    await env.DB.prepare("UPDATE api_keys SET status = 'revoked' WHERE id = ?1").bind(t.keyId).run();
    // Within half the cache period the shared answer stands (one D1 read per key, not per stream)…
    expect(await streamStillAuthorized(env.DB, scope, cacheMs, now + cacheMs / 2 - 1)).toBe(true);
    // …and the next check after it reads D1: the whole delay stays within KEY_CACHE_SECONDS.
    expect(await streamStillAuthorized(env.DB, scope, cacheMs, now + cacheMs / 2)).toBe(false);
    expect(streamCheckMs(cacheMs)).toBe(cacheMs / 2);
    expect(streamCheckMs(0)).toBe(500);
  });

  it("a key moved to another tenant's id, or a missing key, is not authorised", async () => {
    const t = await tenantWithKey();
    const other = await tenantWithKey();
    expect(
      await streamStillAuthorized(
        env.DB,
        { tenantId: other.tenantId, taskIds: null, corsOrigins: [], keyId: t.keyId },
        0,
      ),
    ).toBe(false);
    expect(
      await streamStillAuthorized(
        env.DB,
        { tenantId: t.tenantId, taskIds: null, corsOrigins: [], keyId: "key_missing" },
        0,
      ),
    ).toBe(false);
  });
});

describe("guardStream", () => {
  const encoder = new TextEncoder();

  it("passes the body through unchanged while allowed, and ends with it", async () => {
    const source = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const part of ["a", "b", "c"]) controller.enqueue(encoder.encode(part));
        controller.close();
      },
    });
    const guarded = guardStream(source, async () => true, 10);
    expect(await new Response(guarded).text()).toBe("abc");
  });

  it("closes the client's side at the first refusal and ends the pipe from the object", async () => {
    // The source as production has it: an object's stream (the runtime pipes it; a JavaScript
    // stream's pending read would not see the refusal, and no route hands the guard one).
    const hub = env.TENANT_HUB.get(env.TENANT_HUB.idFromName(`guard-${crypto.randomUUID()}`));
    const source = (await hub.fetch("https://hub/v1/events")).body!;
    expect(await hub.subscriberCount()).toBe(1);
    let checks = 0;
    const guarded = guardStream(source, async () => ++checks < 3, 5);
    expect(await new Response(guarded).text()).toMatch(/^: connected\n/);
    expect(checks).toBe(3);
    // workerd does not run the object's cancel for a stream cancelled across a fetch; its
    // heartbeats let the subscriber go (or, should the runtime drain the dead stream, its age).
    for (let beat = 0; beat < 4; beat++) await heartbeat(hub);
    if ((await hub.subscriberCount()) === 1) await heartbeat(hub, Date.now() + PAST_MAX_AGE_MS);
    expect(await hub.subscriberCount()).toBe(0);
  });

  it("reads nothing ahead: a guarded stream nobody reads is let go by the object's heartbeats", async () => {
    const hub = env.TENANT_HUB.get(env.TENANT_HUB.idFromName(`guard-${crypto.randomUUID()}`));
    const source = (await hub.fetch("https://hub/v1/events")).body!;
    const guarded = guardStream(source, async () => true, 60_000);
    const big = { id: "task_x", blob: "x".repeat(4_000) };
    for (let beat = 0; beat < 4 && (await hub.subscriberCount()) > 0; beat++) {
      await runInDurableObject(hub, (instance) => {
        (instance as unknown as { broadcaster: SseBroadcaster }).broadcaster.broadcast({
          id: beat + 1,
          event: "status",
          data: big,
        });
      });
      await heartbeat(hub);
    }
    expect(await hub.subscriberCount()).toBe(0);
    await guarded.cancel().catch(() => {});
  });

  it("keeps the stream when the check itself fails (a D1 blip cuts no dashboard)", async () => {
    const source = new ReadableStream<Uint8Array>({});
    let checks = 0;
    const guarded = guardStream(
      source,
      async () => {
        checks++;
        throw new Error("D1 unavailable");
      },
      5,
    );
    const reader = guarded.getReader();
    const raced = await Promise.race([
      reader.read().then(() => "read"),
      new Promise((resolve) => setTimeout(() => resolve("open"), 100)),
    ]);
    expect(raced).toBe("open");
    expect(checks).toBeGreaterThan(1);
    await reader.cancel();
  });
});
