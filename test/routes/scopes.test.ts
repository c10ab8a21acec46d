/**
 * Key scopes: generate, read, stream, webhooks, account. A key without the scope a route
 * needs gets 403 insufficient_scope naming it, and nothing is written; a key issued without
 * scopes has all of them; PATCH of scopes takes effect at once; allowed_actions still narrows
 * generate; every /v1 route the app serves has a scope.
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/app";
import { ACTIONS } from "../../src/domain/actions";
import { SCOPES, type Scope, scopeFor } from "../../src/domain/scopes";
import { call, driveToEnd, submit, type TenantWithKey, tenantWithKey } from "../helpers";
import {
  expectError,
  expectNothingWritten,
  expectSubmitted,
  footprint,
  keyRow,
  marker,
} from "./route-helpers";

const FAKE_TASK = "task_01KV52C0TEJSYZMCG0NCS4YWKK";

interface Request {
  method: string;
  path: string;
  body?: unknown;
}

/** Every tenant route, grouped by the scope it needs (with a task id and a webhook id to act on). */
function routesByScope(taskId: string, webhookId: string): Record<Scope, Request[]> {
  return {
    generate: [
      { method: "POST", path: "/v1/midjourney/generations", body: { prompt: marker() } },
      ...ACTIONS.map((action) => ({
        method: "POST",
        path: `/v1/midjourney/generations/${action}`,
        body: { prompt: marker(), task_id: taskId, index: 1 },
      })),
    ],
    read: [
      { method: "GET", path: `/v1/midjourney/${taskId}` },
      { method: "GET", path: `/v1/tasks/${taskId}` },
    ],
    stream: [
      { method: "GET", path: `/v1/midjourney/${taskId}/events` },
      { method: "GET", path: "/v1/events" },
      { method: "POST", path: "/v1/stream-tokens", body: { ttl_seconds: 60 } },
    ],
    webhooks: [
      { method: "POST", path: "/v1/webhooks", body: { url: "https://hooks.example.com/mj" } },
      { method: "GET", path: "/v1/webhooks" },
      { method: "DELETE", path: `/v1/webhooks/${webhookId}` },
    ],
    account: [
      { method: "GET", path: "/v1/account" },
      { method: "GET", path: "/v1/usage" },
    ],
  };
}

async function keyFor(t: TenantWithKey, body: Record<string, unknown>) {
  const res = await call("POST", `/admin/tenants/${t.tenantId}/keys`, {
    admin: true,
    body: { name: marker("scoped"), rpm_limit: 10_000, max_inflight: 10_000, ...body },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { ...t, keyId: res.body.id as string, key: res.body.key as string, created: res.body };
}

const patchScopes = (t: TenantWithKey, scopes: unknown) =>
  call("PATCH", `/admin/tenants/${t.tenantId}/keys/${t.keyId}`, { admin: true, body: { scopes } });

async function webhookEndpoints(tenantId: string) {
  const { results } = await env.DB.prepare("SELECT * FROM webhook_endpoints WHERE tenant_id = ?1 ORDER BY id")
    .bind(tenantId)
    .all();
  return results;
}

/** A tenant with a finished task and a webhook endpoint, made with its all-scopes key. */
async function tenantWithTaskAndWebhook() {
  const owner = await tenantWithKey();
  const taskId = expectSubmitted(await submit(owner.key, "imagine", { prompt: marker("parent") }));
  await driveToEnd(taskId, owner.key);
  const hook = await call("POST", "/v1/webhooks", {
    key: owner.key,
    body: { url: "https://hooks.example.com/owner" },
  });
  expect(hook.status, JSON.stringify(hook.body)).toBe(201);
  return { owner, taskId, webhookId: hook.body.id as string };
}

describe("a key without a scope is refused on each of its routes", () => {
  for (const missing of SCOPES) {
    it(`no '${missing}' → 403 insufficient_scope on every '${missing}' route, nothing written`, async () => {
      const { owner, taskId, webhookId } = await tenantWithTaskAndWebhook();
      const limited = await keyFor(owner, { scopes: SCOPES.filter((s) => s !== missing) });
      expect(limited.created.scopes).toEqual(SCOPES.filter((s) => s !== missing));

      // What the tenant has before: the owner's task and its ledger rows, one webhook endpoint.
      const before = await footprint(limited);
      const tasksBefore = await env.DB.prepare("SELECT id, status FROM tasks WHERE tenant_id = ?1")
        .bind(owner.tenantId)
        .all();
      const ledgerBefore = await env.DB.prepare("SELECT COUNT(*) AS n FROM ledger WHERE tenant_id = ?1")
        .bind(owner.tenantId)
        .first<{ n: number }>();
      const hooksBefore = await webhookEndpoints(owner.tenantId);
      const rateBefore = await env.DB.prepare("SELECT * FROM rate_windows WHERE key_id = ?1")
        .bind(limited.keyId)
        .all();

      for (const request of routesByScope(taskId, webhookId)[missing]) {
        const res = await call(request.method, request.path, { key: limited.key, body: request.body });
        const error = expectError(res, 403, "insufficient_scope");
        expect(error.message, `${request.method} ${request.path}`).toContain(`'${missing}'`);
        expect(error.type).toBe("permission_error");
      }

      expect(
        (await env.DB.prepare("SELECT id, status FROM tasks WHERE tenant_id = ?1").bind(owner.tenantId).all())
          .results,
      ).toEqual(tasksBefore.results);
      expect(
        await env.DB.prepare("SELECT COUNT(*) AS n FROM ledger WHERE tenant_id = ?1")
          .bind(owner.tenantId)
          .first(),
      ).toEqual(ledgerBefore);
      expect(await webhookEndpoints(owner.tenantId)).toEqual(hooksBefore);
      expect(
        (await env.DB.prepare("SELECT * FROM rate_windows WHERE key_id = ?1").bind(limited.keyId).all())
          .results,
      ).toEqual(rateBefore.results);
      const after = await footprint(limited);
      expect(after.balance).toBe(before.balance);
      expect(after.tenantInflight).toBe(before.tenantInflight);
      expect(after.keyInflight).toBe(0);
      expect(after.idempotency).toEqual(before.idempotency);

      // The same key still works on a route of a scope it has.
      const other = SCOPES.find((s) => s !== missing && s !== "generate")!;
      const allowed = routesByScope(taskId, webhookId)[other].find((r) => r.method === "GET");
      if (allowed) {
        const res =
          other === "stream"
            ? await SELF.fetch(`http://gateway.test${allowed.path}`, {
                headers: { authorization: `Bearer ${limited.key}` },
              })
            : await call(allowed.method, allowed.path, { key: limited.key });
        expect(res.status, `${allowed.method} ${allowed.path}`).toBe(200);
        if (res instanceof Response) await res.body?.cancel();
      }
    });
  }

  it("a key with no scopes but 'read' is refused a submit, and the submit writes nothing", async () => {
    const t = await tenantWithKey(10_000_000, { scopes: ["read"] });
    const before = await footprint(t);
    const res = await submit(t.key, "imagine", { prompt: marker() }, { "idempotency-key": marker("idem") });
    expect(expectError(res, 403, "insufficient_scope").message).toContain("'generate'");
    await expectNothingWritten(t, before);
    expect((await keyRow(t.keyId)).scopes).toBe('["read"]');
  });
});

describe("default keys", () => {
  it("a key issued without scopes has them all (NULL in D1) and works on every scope's routes", async () => {
    const { owner, taskId } = await tenantWithTaskAndWebhook();
    const row = await keyRow(owner.keyId);
    expect(row.scopes).toBeNull();
    const listed = await call("GET", `/admin/tenants/${owner.tenantId}/keys`, { admin: true });
    expect(listed.body.data[0].scopes).toEqual([...SCOPES]);
    expect((await call("GET", "/v1/account", { key: owner.key })).body.key.scopes).toEqual([...SCOPES]);

    expectSubmitted(await submit(owner.key, "imagine", { prompt: marker() }));
    expect((await call("GET", `/v1/midjourney/${taskId}`, { key: owner.key })).status).toBe(200);
    expect((await call("GET", `/v1/tasks/${taskId}`, { key: owner.key })).status).toBe(200);
    expect((await call("POST", "/v1/stream-tokens", { key: owner.key, body: {} })).status).toBe(201);
    const stream = await SELF.fetch(`http://gateway.test/v1/midjourney/${taskId}/events`, {
      headers: { authorization: `Bearer ${owner.key}` },
    });
    expect(stream.status).toBe(200);
    await stream.body?.cancel();
    expect((await call("GET", "/v1/webhooks", { key: owner.key })).status).toBe(200);
    expect((await call("GET", "/v1/account", { key: owner.key })).status).toBe(200);
    expect((await call("GET", "/v1/usage", { key: owner.key })).status).toBe(200);
  });
});

describe("setting scopes", () => {
  it("PATCH scopes takes effect on the next request; null restores all", async () => {
    const t = await tenantWithKey();
    const first = expectSubmitted(await submit(t.key, "imagine", { prompt: marker() }));

    const narrowed = await patchScopes(t, ["read", "read", "account"]);
    expect(narrowed.status, JSON.stringify(narrowed.body)).toBe(200);
    expect(narrowed.body.scopes).toEqual(["read", "account"]);
    expect((await keyRow(t.keyId)).scopes).toBe('["read","account"]');
    expectError(await submit(t.key, "imagine", { prompt: marker() }), 403, "insufficient_scope");
    expect((await call("GET", `/v1/midjourney/${first}`, { key: t.key })).status).toBe(200);
    expectError(await call("GET", "/v1/webhooks", { key: t.key }), 403, "insufficient_scope");

    // A PATCH of something else leaves the scopes alone.
    const renamed = await call("PATCH", `/admin/tenants/${t.tenantId}/keys/${t.keyId}`, {
      admin: true,
      body: { name: "renamed" },
    });
    expect(renamed.body.scopes).toEqual(["read", "account"]);

    const restored = await patchScopes(t, null);
    expect(restored.body.scopes).toEqual([...SCOPES]);
    expect((await keyRow(t.keyId)).scopes).toBeNull();
    expectSubmitted(await submit(t.key, "imagine", { prompt: marker() }));
    expect((await call("GET", "/v1/webhooks", { key: t.key })).status).toBe(200);
  });

  it("refuses unknown and empty scope lists on create and PATCH (400 naming the field)", async () => {
    const t = await tenantWithKey();
    for (const scopes of [[], ["admin"], ["read", "Generate"], "read", [1]]) {
      const created = await call("POST", `/admin/tenants/${t.tenantId}/keys`, {
        admin: true,
        body: { name: "bad", scopes },
      });
      expect(expectError(created, 400, "invalid_request").field ?? "", JSON.stringify(scopes)).toMatch(
        /^scopes/,
      );
      expect(expectError(await patchScopes(t, scopes), 400, "invalid_request").field ?? "").toMatch(
        /^scopes/,
      );
    }
    expect((await keyRow(t.keyId)).scopes).toBeNull();
  });

  it("allowed_actions still narrows 'generate'", async () => {
    const t = await tenantWithKey(10_000_000, { scopes: ["generate", "read"], allowed_actions: ["imagine"] });
    const id = expectSubmitted(await submit(t.key, "imagine", { prompt: marker() }));
    await driveToEnd(id, t.key);
    expectError(await submit(t.key, "upscale", { task_id: id, index: 1 }), 403, "action_not_allowed");
  });

  it("a stream token minted by a 'stream' key opens the streams; the key itself cannot read tasks", async () => {
    const { owner, taskId } = await tenantWithTaskAndWebhook();
    const streamer = await keyFor(owner, { scopes: ["stream"] });
    expectError(
      await call("GET", `/v1/midjourney/${taskId}`, { key: streamer.key }),
      403,
      "insufficient_scope",
    );
    const minted = await call("POST", "/v1/stream-tokens", {
      key: streamer.key,
      body: { task_ids: [taskId] },
    });
    expect(minted.status, JSON.stringify(minted.body)).toBe(201);
    const stream = await SELF.fetch(
      `http://gateway.test/v1/midjourney/${taskId}/events?token=${minted.body.token}`,
    );
    expect(stream.status).toBe(200);
    await stream.body?.cancel();
  });

  it("the OpenAPI document lists the scopes as an enum on keys", async () => {
    const doc: any = await (await SELF.fetch("http://gateway.test/openapi.json")).json();
    const enumOf = (schema: any) => schema.properties.scopes.items?.enum ?? schema.properties.scopes.anyOf;
    expect(doc.components.schemas.ApiKey.properties.scopes.items.enum).toEqual([...SCOPES]);
    expect(JSON.stringify(enumOf(doc.components.schemas.KeyCreate))).toContain('"generate"');
    expect(JSON.stringify(enumOf(doc.components.schemas.KeyPatch))).toContain('"account"');
  });
});

describe("the scope table", () => {
  it("covers every /v1 route the app serves", () => {
    const routes = createApp()
      .routes.filter((r) => r.method !== "ALL" && r.path.startsWith("/v1/"))
      .map((r) => ({ method: r.method, path: r.path.replace(/:[A-Za-z0-9_]+/g, FAKE_TASK) }));
    expect(routes.length).toBeGreaterThan(20);
    const uncovered = routes.filter((r) => scopeFor(r.method, r.path) === null);
    expect(uncovered).toEqual([]);
  });

  it("a path no rule covers needs every scope: 403 for a narrowed key, the usual 404 for a full one", async () => {
    const full = await tenantWithKey(0);
    const narrowed = await keyFor(full, { scopes: ["generate", "read", "stream", "webhooks"] });
    expectError(await call("GET", "/v1/not-a-route", { key: full.key }), 404, "not_found");
    const error = expectError(
      await call("GET", "/v1/not-a-route", { key: narrowed.key }),
      403,
      "insufficient_scope",
    );
    expect(error.message).toContain("'account'");
  });

  it("maps each route to its scope", () => {
    const cases: Array<[string, string, Scope | null]> = [
      ["POST", "/v1/midjourney/generations", "generate"],
      ["POST", "/v1/midjourney/generations/upscale", "generate"],
      ["GET", `/v1/midjourney/${FAKE_TASK}`, "read"],
      ["HEAD", `/v1/midjourney/${FAKE_TASK}`, "read"],
      ["GET", `/v1/tasks/${FAKE_TASK}`, "read"],
      ["GET", `/v1/midjourney/${FAKE_TASK}/events`, "stream"],
      ["OPTIONS", `/v1/midjourney/${FAKE_TASK}/events`, "stream"],
      ["GET", "/v1/events", "stream"],
      ["POST", "/v1/stream-tokens", "stream"],
      ["POST", "/v1/webhooks", "webhooks"],
      ["DELETE", "/v1/webhooks/wh_1", "webhooks"],
      ["GET", "/v1/account", "account"],
      ["GET", "/v1/usage", "account"],
      ["GET", "/v1/ledger", "account"],
      ["GET", "/v1/midjourney/generationsx/imagine", null],
      ["GET", "/v1/nothing-here", null],
    ];
    for (const [method, path, scope] of cases)
      expect(scopeFor(method, path), `${method} ${path}`).toBe(scope);
  });
});
