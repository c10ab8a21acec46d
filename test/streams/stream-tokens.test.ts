/**
 * Browser access to streams: POST /v1/stream-tokens (server side, sub-key), ?token= on
 * the two stream endpoints only, the token's task scope, and CORS per tenant.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { signStreamToken, streamTokenSecret } from "../../src/domain/stream-token";
import { call, submit, tenantWithKey } from "../helpers";
import { openStream, openTaskStream, sseReader, taskIdOf, view } from "./sse";

const ORIGIN = "https://app.example.com";

async function mint(key: string, body: unknown = {}) {
  const res = await call("POST", "/v1/stream-tokens", { key, body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.token as string;
}

const q = (token: string) => `token=${encodeURIComponent(token)}`;

function expectError(res: { status: number; body: any }, status: number, code: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body.error.code, JSON.stringify(res.body)).toBe(code);
  expect(res.body.error.request_id).toMatch(/^req_/);
}

describe("POST /v1/stream-tokens", () => {
  it("mints a token for the key's tenant with an expiry and an optional task scope", async () => {
    const t = await tenantWithKey();
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "mint" }));
    const before = Date.now();
    const res = await call("POST", "/v1/stream-tokens", {
      key: t.key,
      body: { task_ids: [taskId], ttl_seconds: 120 },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(Object.keys(res.body).sort()).toEqual(["expires_at", "task_ids", "token"]);
    expect(res.body.token).toMatch(/^v1\.[\w-]+\.[\w-]+$/);
    expect(res.body.task_ids).toEqual([taskId]);
    const expires = Date.parse(res.body.expires_at);
    expect(expires).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 119_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 121_000);
    // The key never appears in it.
    expect(res.body.token).not.toContain(t.key);

    const wide = await call("POST", "/v1/stream-tokens", { key: t.key, body: {} });
    expect(wide.status).toBe(201);
    expect(wide.body.task_ids).toBeNull();
    // Default ten minutes.
    expect(Date.parse(wide.body.expires_at) - Date.now()).toBeGreaterThan(590_000);
    expect(Date.parse(wide.body.expires_at) - Date.now()).toBeLessThanOrEqual(600_000);
  });

  it("validates the request", async () => {
    const t = await tenantWithKey();
    for (const body of [
      { ttl_seconds: 5 },
      { ttl_seconds: 86_401 },
      { ttl_seconds: 1.5 },
      { task_ids: [] },
      { task_ids: ["not-a-task"] },
      { task_ids: Array.from({ length: 101 }, () => "task_01KV52C0TEJSYZMCG0NCS4YWKK") },
      { scope: "all" },
    ]) {
      const res = await call("POST", "/v1/stream-tokens", { key: t.key, body });
      expectError(res, 400, "invalid_request");
    }
  });

  it("is minted with the sub-key only: not with a token, not with the admin token, not anonymously", async () => {
    const t = await tenantWithKey();
    const token = await mint(t.key);
    expect((await call("POST", `/v1/stream-tokens?${q(token)}`, { body: {} })).status).toBe(401);
    expect((await call("POST", "/v1/stream-tokens", { admin: true, body: {} })).status).toBe(401);
    expect((await call("POST", "/v1/stream-tokens", { body: {} })).status).toBe(401);
  });
});

describe("?token= on the stream endpoints", () => {
  it("opens the task stream and the tenant stream without the key", async () => {
    const t = await tenantWithKey();
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "token opens" }));
    const token = await mint(t.key, { task_ids: [taskId] });
    const stream = await openTaskStream(taskId, { query: q(token) });
    const first = await stream.next();
    expect(first!.data).toBe(JSON.stringify(await view(taskId, t.key)));
    await stream.cancel();
    const hub = await openStream(`/v1/events?${q(token)}`);
    expect(hub.status).toBe(200);
    await hub.body!.cancel();
  });

  it("an expired token is 401 stream_token_expired", async () => {
    const t = await tenantWithKey();
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "token expired" }));
    const expired = await signStreamToken(
      { tenantId: t.tenantId, taskIds: null, exp: Math.floor(Date.now() / 1000) - 1 },
      streamTokenSecret(env),
    );
    expectError(
      await call("GET", `/v1/midjourney/${taskId}/events?${q(expired)}`),
      401,
      "stream_token_expired",
    );
    expectError(await call("GET", `/v1/events?${q(expired)}`), 401, "stream_token_expired");
    // The same claims, still valid, pass: the expiry alone made the difference.
    const valid = await signStreamToken(
      { tenantId: t.tenantId, taskIds: null, exp: Math.floor(Date.now() / 1000) + 60 },
      streamTokenSecret(env),
    );
    const ok = await openStream(`/v1/midjourney/${taskId}/events?${q(valid)}`);
    expect(ok.status).toBe(200);
    await ok.body!.cancel();
  });

  it("a tampered payload or signature, another secret or garbage is 401 stream_token_invalid", async () => {
    const victim = await tenantWithKey();
    const attacker = await tenantWithKey();
    const taskId = taskIdOf(await submit(victim.key, "imagine", { prompt: "token tamper" }));
    const token = await mint(attacker.key);
    const [version, payload, signature] = token.split(".");
    const claims = JSON.parse(atob(payload!.replace(/-/g, "+").replace(/_/g, "/")));
    const forgedPayload = btoa(JSON.stringify({ ...claims, t: victim.tenantId }))
      .replace(/\+/g, "-")
      .replace(/\//g, "_")
      .replace(/=+$/, "");
    const flipped = signature!.slice(0, 10) + (signature![10] === "A" ? "B" : "A") + signature!.slice(11);
    const otherSecret = await signStreamToken(
      { tenantId: victim.tenantId, taskIds: null, exp: Math.floor(Date.now() / 1000) + 60 },
      "not-the-gateway-secret",
    );
    for (const bad of [
      `${version}.${forgedPayload}.${signature}`,
      `${version}.${payload}.${flipped}`,
      otherSecret,
      "v1.garbage",
      "nonsense",
    ]) {
      expectError(
        await call("GET", `/v1/midjourney/${taskId}/events?${q(bad)}`),
        401,
        "stream_token_invalid",
      );
      expectError(await call("GET", `/v1/events?${q(bad)}`), 401, "stream_token_invalid");
    }
  });

  it("another tenant's task is 404, a task outside the token's task_ids is 403 stream_token_scope", async () => {
    const a = await tenantWithKey();
    const b = await tenantWithKey();
    const aTask = taskIdOf(await submit(a.key, "imagine", { prompt: "scope a" }));
    const aOther = taskIdOf(await submit(a.key, "imagine", { prompt: "scope a other" }));
    const bTask = taskIdOf(await submit(b.key, "imagine", { prompt: "scope b" }));

    const wideA = await mint(a.key);
    expectError(await call("GET", `/v1/midjourney/${bTask}/events?${q(wideA)}`), 404, "task_not_found");

    const scopedA = await mint(a.key, { task_ids: [aTask] });
    expectError(
      await call("GET", `/v1/midjourney/${aOther}/events?${q(scopedA)}`),
      403,
      "stream_token_scope",
    );
    const ok = await openStream(`/v1/midjourney/${aTask}/events?${q(scopedA)}`);
    expect(ok.status).toBe(200);
    await ok.body!.cancel();

    // Naming another tenant's task in the scope does not open it either.
    const sneaky = await mint(a.key, { task_ids: [bTask] });
    expectError(await call("GET", `/v1/midjourney/${bTask}/events?${q(sneaky)}`), 404, "task_not_found");
  });

  it("is refused on every non-stream endpoint", async () => {
    const t = await tenantWithKey();
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "token elsewhere" }));
    const token = await mint(t.key);
    for (const [method, path, body] of [
      ["GET", `/v1/midjourney/${taskId}`],
      ["GET", `/v1/tasks/${taskId}`],
      ["POST", "/v1/midjourney/generations/imagine", { prompt: "with a token" }],
      ["POST", "/v1/midjourney/generations/upscale", { task_id: taskId, index: 1 }],
      ["GET", "/v1/account"],
      ["GET", "/v1/usage"],
      ["GET", "/v1/webhooks"],
      ["POST", "/v1/webhooks", { url: "https://hooks.test/_sim/webhooks/never" }],
      ["POST", "/v1/stream-tokens", {}],
    ] as const) {
      const res = await call(method, `${path}?${q(token)}`, { body });
      expect(res.status, `${method} ${path}: ${JSON.stringify(res.body)}`).toBe(401);
      expect(res.body.error.code).toBe("missing_api_key");
    }
    // A token in the Authorization header is no key either.
    const asBearer = await call("GET", `/v1/midjourney/${taskId}`, { key: token });
    expect(asBearer.status).toBe(401);
  });

  it("a suspended tenant's tokens stop working", async () => {
    const t = await tenantWithKey();
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "token suspended" }));
    const token = await mint(t.key);
    const patch = await call("PATCH", `/admin/tenants/${t.tenantId}`, {
      admin: true,
      body: { status: "suspended" },
    });
    expect(patch.status).toBe(200);
    expectError(await call("GET", `/v1/midjourney/${taskId}/events?${q(token)}`), 403, "tenant_suspended");
    expectError(await call("GET", `/v1/events?${q(token)}`), 403, "tenant_suspended");
  });

  it("with an Authorization header the key decides, not the token", async () => {
    const a = await tenantWithKey();
    const b = await tenantWithKey();
    const aTask = taskIdOf(await submit(a.key, "imagine", { prompt: "header wins" }));
    const aToken = await mint(a.key);
    const res = await call("GET", `/v1/midjourney/${aTask}/events?${q(aToken)}`, { key: b.key });
    expectError(res, 404, "task_not_found");
  });
});

describe("revocation bites: a token lives only as long as the key that minted it", () => {
  const mint = async (key: string, taskIds: string[]) =>
    (await call("POST", "/v1/stream-tokens", { key, body: { task_ids: taskIds } })).body.token as string;
  const open = (taskId: string, token: string) =>
    openStream(`/v1/midjourney/${taskId}/events?token=${encodeURIComponent(token)}`);

  it("revoked → 401 key_revoked, disabled → 403 key_disabled, expired → 401; other keys' tokens unaffected", async () => {
    const t = await tenantWithKey();
    const second = await call("POST", `/admin/tenants/${t.tenantId}/keys`, {
      admin: true,
      body: { name: "second" },
    });
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "revocation bites" }));
    const token = await mint(t.key, [taskId]);
    const other = await mint(second.body.key, [taskId]);
    const first = await open(taskId, token);
    expect(first.status).toBe(200);
    await first.body?.cancel();

    await call("PATCH", `/admin/tenants/${t.tenantId}/keys/${t.keyId}`, {
      admin: true,
      body: { status: "disabled" },
    });
    const disabled = await open(taskId, token);
    expect(disabled.status).toBe(403);
    expect((await disabled.json<any>()).error.code).toBe("key_disabled");

    await call("DELETE", `/admin/tenants/${t.tenantId}/keys/${t.keyId}`, { admin: true });
    const revoked = await open(taskId, token);
    expect(revoked.status).toBe(401);
    expect((await revoked.json<any>()).error.code).toBe("key_revoked");

    // A token of another, still active key of the same tenant keeps working.
    const unaffected = await open(taskId, other);
    expect(unaffected.status).toBe(200);
    await unaffected.body?.cancel();
  });

  it("an operator-minted token carries no key: revoking a key does not end it; suspending the tenant does", async () => {
    const t = await tenantWithKey();
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "operator token" }));
    const minted = await call("POST", `/admin/tenants/${t.tenantId}/stream-tokens`, {
      admin: true,
      body: { task_ids: [taskId] },
    });
    expect(minted.status).toBe(201);
    await call("DELETE", `/admin/tenants/${t.tenantId}/keys/${t.keyId}`, { admin: true });
    const still = await open(taskId, minted.body.token);
    expect(still.status).toBe(200);
    await still.body?.cancel();
    await call("PATCH", `/admin/tenants/${t.tenantId}`, { admin: true, body: { status: "suspended" } });
    expect((await open(taskId, minted.body.token)).status).toBe(403);
  });
});

describe("CORS on the stream endpoints", () => {
  async function tenantWithOrigins(origins: string[]) {
    const t = await tenantWithKey();
    const res = await call("PATCH", `/admin/tenants/${t.tenantId}`, {
      admin: true,
      body: { cors_origins: origins },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.cors_origins).toEqual(origins);
    return t;
  }

  it("an allowed origin gets its own Access-Control-Allow-Origin (never *) on both streams", async () => {
    const t = await tenantWithOrigins([ORIGIN, "http://127.0.0.1:5173"]);
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "cors ok" }));
    const token = await mint(t.key);
    for (const path of [`/v1/midjourney/${taskId}/events`, "/v1/events"]) {
      for (const origin of [ORIGIN, "http://127.0.0.1:5173"]) {
        const res = await openStream(`${path}?${q(token)}`, { headers: { origin } });
        expect(res.status, path).toBe(200);
        expect(res.headers.get("access-control-allow-origin")).toBe(origin);
        expect(res.headers.get("vary") ?? "").toMatch(/origin/i);
        expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
        if (path === "/v1/events") {
          await res.body!.cancel();
        } else {
          const stream = sseReader(res);
          expect(JSON.parse((await stream.next())!.data).id).toBe(taskId);
          await stream.cancel();
        }
      }
    }
  });

  it("another origin is 403 origin_not_allowed, and a tenant with no origins allows none", async () => {
    const t = await tenantWithOrigins([ORIGIN]);
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "cors refused" }));
    const token = await mint(t.key);
    for (const origin of [
      "https://evil.example.com",
      "https://app.example.com.evil.net",
      "http://app.example.com",
      "null",
    ]) {
      for (const path of [`/v1/midjourney/${taskId}/events`, "/v1/events"]) {
        const res = await call("GET", `${path}?${q(token)}`, { headers: { origin } });
        expectError(res, 403, "origin_not_allowed");
        expect(res.headers.get("access-control-allow-origin")).not.toBe(origin);
      }
    }
    const none = await tenantWithKey();
    const noneTask = taskIdOf(await submit(none.key, "imagine", { prompt: "cors none" }));
    const noneToken = await mint(none.key);
    expectError(
      await call("GET", `/v1/midjourney/${noneTask}/events?${q(noneToken)}`, { headers: { origin: ORIGIN } }),
      403,
      "origin_not_allowed",
    );
    // Without an Origin (a server-side client) there is no CORS at all.
    const server = await openStream(`/v1/midjourney/${noneTask}/events`, { key: none.key });
    expect(server.status).toBe(200);
    expect(server.headers.get("access-control-allow-origin")).toBeNull();
    await server.body!.cancel();
  });

  it("answers the preflight for an allowed origin, allowing GET and the Last-Event-ID header", async () => {
    const t = await tenantWithOrigins([ORIGIN]);
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "cors preflight" }));
    const token = await mint(t.key);
    for (const path of [`/v1/midjourney/${taskId}/events`, "/v1/events"]) {
      const res = await call("OPTIONS", `${path}?${q(token)}`, {
        headers: {
          origin: ORIGIN,
          "access-control-request-method": "GET",
          "access-control-request-headers": "last-event-id",
        },
      });
      expect(res.status, path).toBe(204);
      expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      expect(res.headers.get("access-control-allow-methods")).toMatch(/\bGET\b/);
      expect(res.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("last-event-id");
      const refused = await call("OPTIONS", `${path}?${q(token)}`, {
        headers: { origin: "https://evil.example.com", "access-control-request-method": "GET" },
      });
      expectError(refused, 403, "origin_not_allowed");
    }
  });

  it("a change of the tenant's origins applies to the next request", async () => {
    const t = await tenantWithOrigins([ORIGIN]);
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "cors change" }));
    const token = await mint(t.key);
    const path = `/v1/midjourney/${taskId}/events?${q(token)}`;
    const before = await openStream(path, { headers: { origin: ORIGIN } });
    expect(before.status).toBe(200);
    await before.body!.cancel();
    await tenantWithOriginsPatch(t.tenantId, ["https://other.example.com"]);
    expectError(await call("GET", path, { headers: { origin: ORIGIN } }), 403, "origin_not_allowed");
  });

  it("the admin API refuses origins that are not origins", async () => {
    const t = await tenantWithKey();
    for (const bad of ["app.example.com", "https://app.example.com/", "https://app.example.com/path", "*"]) {
      const res = await call("PATCH", `/admin/tenants/${t.tenantId}`, {
        admin: true,
        body: { cors_origins: [bad] },
      });
      expect(res.status, bad).toBe(400);
    }
  });
});

async function tenantWithOriginsPatch(tenantId: string, origins: string[]) {
  const res = await call("PATCH", `/admin/tenants/${tenantId}`, {
    admin: true,
    body: { cors_origins: origins },
  });
  expect(res.status).toBe(200);
}
