/**
 * A security matrix over every route, generated from /openapi.json so that a new route is
 * covered without anyone remembering: operator routes refuse a missing or wrong token,
 * tenant routes refuse revoked, disabled and expired keys and keys without the route's
 * scope, another tenant's ids are 404 — and none of these requests writes anything.
 */
import { SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { SCOPES, scopeFor } from "../../src/domain/scopes";
import { snapshot, taskIdOf, uid } from "../db/money-helpers";
import { call, driveToEnd, submit, tenantWithKey } from "../helpers";

/**
 * Routes anyone may call: the docs, the health check and hosted result files (guarded by the
 * link's own signature or capability token instead: test/routes/assets.test.ts). Anything else must be guarded.
 */
const PUBLIC = new Set([
  "GET /health",
  "GET /docs",
  "GET /openapi.json",
  "GET /assets/t/{tenant_id}/{task_id}/{name}",
  "GET /assets/c/{token}/{name}",
]);
const DUMMY_TASK = "task_01KV52C0TEJSYZMCG0NCS4YWKK";

interface Route {
  method: string;
  path: string;
}

let routes: Route[] = [];
let foreignTask: string;

beforeAll(async () => {
  const spec = await (await SELF.fetch("http://gateway.test/openapi.json")).json<{
    paths: Record<string, Record<string, unknown>>;
  }>();
  routes = Object.entries(spec.paths).flatMap(([path, ops]) =>
    Object.keys(ops)
      .filter((m) => ["get", "post", "put", "patch", "delete"].includes(m))
      .map((m) => ({ method: m.toUpperCase(), path })),
  );
  const other = await tenantWithKey(1_000_000);
  foreignTask = taskIdOf(await submit(other.key, "imagine", { prompt: `foreign ${uid()}` }));
  await driveToEnd(foreignTask, other.key);
});

/** A concrete URL for a documented path: task ids get `taskId`, any other parameter a dummy. */
function concrete(path: string, taskId = DUMMY_TASK): string {
  return path.replace(/\{task_id\}/g, taskId).replace(/\{[^}]+\}/g, "x_dummy");
}

async function request(route: Route, headers: Record<string, string>, taskId?: string) {
  const init: RequestInit = { method: route.method, headers: { ...headers } };
  if (route.method !== "GET" && route.method !== "DELETE") {
    (init.headers as Record<string, string>)["content-type"] = "application/json";
    init.body = "{}";
  }
  const response = await SELF.fetch(`http://gateway.test${concrete(route.path, taskId)}`, init);
  await response.body?.cancel();
  return response.status;
}

describe("security matrix from /openapi.json", () => {
  it("documents the routes the matrix runs over, and every one is operator, tenant or explicitly public", () => {
    expect(routes.length).toBeGreaterThan(30);
    for (const route of routes) {
      const key = `${route.method} ${route.path}`;
      const guarded = route.path.startsWith("/admin/") || route.path.startsWith("/v1/");
      expect(guarded || PUBLIC.has(key), `${key} is neither /admin, /v1 nor listed as public`).toBe(true);
    }
  });

  it("every operator route: no token or a wrong token → 401, nothing written", async () => {
    const before = await snapshot();
    for (const route of routes.filter((r) => r.path.startsWith("/admin/"))) {
      expect(await request(route, {}), `${route.method} ${route.path} without a token`).toBe(401);
      expect(
        await request(route, { authorization: "Bearer wrong-admin-token" }),
        `${route.method} ${route.path} with a wrong token`,
      ).toBe(401);
    }
    expect(await snapshot()).toEqual(before);
  });

  it("every tenant route: revoked or expired key → 401, disabled key or suspended tenant → 403, nothing written", async () => {
    const revoked = await tenantWithKey(1_000_000);
    expect(
      (await call("DELETE", `/admin/tenants/${revoked.tenantId}/keys/${revoked.keyId}`, { admin: true }))
        .status,
    ).toBe(200);
    const disabled = await tenantWithKey(1_000_000);
    await call("PATCH", `/admin/tenants/${disabled.tenantId}/keys/${disabled.keyId}`, {
      admin: true,
      body: { status: "disabled" },
    });
    const suspended = await tenantWithKey(1_000_000);
    await call("PATCH", `/admin/tenants/${suspended.tenantId}`, {
      admin: true,
      body: { status: "suspended" },
    });
    const expired = await tenantWithKey(1_000_000, {
      expires_at: new Date(Date.now() + 1_000).toISOString(),
    });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const before = await snapshot();
    for (const route of routes.filter((r) => r.path.startsWith("/v1/"))) {
      const name = `${route.method} ${route.path}`;
      expect(await request(route, { authorization: `Bearer ${revoked.key}` }), `${name}, revoked`).toBe(401);
      expect(await request(route, { authorization: `Bearer ${expired.key}` }), `${name}, expired`).toBe(401);
      expect(await request(route, { authorization: `Bearer ${disabled.key}` }), `${name}, disabled`).toBe(
        403,
      );
      expect(await request(route, { authorization: `Bearer ${suspended.key}` }), `${name}, suspended`).toBe(
        403,
      );
      expect(await request(route, {}), `${name}, no key`).toBe(401);
    }
    expect(await snapshot()).toEqual(before);
  });

  it("every tenant route: a key without the route's scope → 403 insufficient_scope, nothing written", async () => {
    const before = await snapshot();
    for (const route of routes.filter((r) => r.path.startsWith("/v1/"))) {
      const needed = scopeFor(route.method, concrete(route.path));
      expect(needed, `${route.method} ${route.path} has no scope rule`).not.toBeNull();
      const t = await tenantWithKey(1_000_000, { scopes: SCOPES.filter((s) => s !== needed) });
      expect(
        await request(route, { authorization: `Bearer ${t.key}` }),
        `${route.method} ${route.path} without ${needed}`,
      ).toBe(403);
    }
    const after = await snapshot();
    // Only the keys made above were added; no money, task or rate row moved.
    for (const table of Object.keys(before)) {
      if (table === "tenants" || table === "api_keys" || table === "ledger") continue;
      expect(after[table], table).toEqual(before[table]);
    }
  });

  it("every tenant route with a task id: another tenant's task → 404, nothing written", async () => {
    const t = await tenantWithKey(1_000_000);
    const before = await snapshot();
    const withTask = routes.filter((r) => r.path.startsWith("/v1/") && r.path.includes("{task_id}"));
    expect(withTask.length).toBeGreaterThan(2);
    for (const route of withTask) {
      expect(
        await request(route, { authorization: `Bearer ${t.key}` }, foreignTask),
        `${route.method} ${route.path} with another tenant's task`,
      ).toBe(404);
    }
    // Follow-ups naming another tenant's task as parent are 404 too, and charge nothing.
    for (const [action, extra] of [
      ["upscale", { index: 1 }],
      ["variation", { index: 1 }],
      ["reroll", {}],
      ["video", {}],
      ["modal", {}],
    ] as const) {
      const res = await submit(t.key, action, { task_id: foreignTask, ...extra });
      expect(res.status, `${action}: ${JSON.stringify(res.body)}`).toBe(404);
    }
    expect(await snapshot()).toEqual(before);
  });
});
