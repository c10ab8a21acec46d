/**
 * Sub-key lifecycle and tenant administration through /admin: the secret is shown once
 * and stored only as a hash; disabled, revoked and expired keys and suspended tenants are
 * refused with their own codes; allowed_actions restricts a key; the admin token guards /admin.
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ADMIN, call, submit, type TenantWithKey, tenantWithKey } from "../helpers";
import { expectError, expectNothingWritten, expectSubmitted, footprint, get, marker } from "./route-helpers";

async function sha256Hex(text: string) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const patchKey = (t: TenantWithKey, body: unknown, keyId = t.keyId) =>
  call("PATCH", `/admin/tenants/${t.tenantId}/keys/${keyId}`, { admin: true, body });

/** A key works: a submit goes through and GET of its task answers 200. */
async function expectKeyWorks(key: string) {
  const id = expectSubmitted(await submit(key, "imagine", { prompt: marker("works") }));
  expect((await get(key, id)).status).toBe(200);
  return id;
}

/** A key is refused with that status and code on submits, queries and the account. */
async function expectKeyRefused(key: string, status: number, code: string, taskId?: string) {
  expectError(await submit(key, "imagine", { prompt: marker("refused") }), status, code);
  expectError(await call("GET", "/v1/account", { key }), status, code);
  if (taskId) expectError(await get(key, taskId), status, code);
}

describe("issuing keys", () => {
  it("shows the secret once; lists and D1 never hold it, only its SHA-256", async () => {
    const tenant = await call("POST", "/admin/tenants", { admin: true, body: { name: marker("acme") } });
    expect(tenant.status).toBe(201);
    const created = await call("POST", `/admin/tenants/${tenant.body.id}/keys`, {
      admin: true,
      body: { name: "server", rpm_limit: 100 },
    });
    expect(created.status).toBe(201);
    const secret: string = created.body.key;
    expect(secret).toMatch(/^sk-mjg-[A-Za-z0-9]{8}-[A-Za-z0-9_-]{40,}$/);
    expect(created.body).toMatchObject({
      tenant_id: tenant.body.id,
      name: "server",
      status: "active",
      expires_at: null,
      allowed_actions: null,
      rpm_limit: 100,
      revoked_at: null,
    });
    expect(secret.startsWith(created.body.prefix)).toBe(true);
    expect(created.body.prefix.length).toBeLessThan(secret.length / 2);

    const list = await call("GET", `/admin/tenants/${tenant.body.id}/keys`, { admin: true });
    expect(list.status).toBe(200);
    expect(list.body.data).toHaveLength(1);
    expect(list.body.data[0].id).toBe(created.body.id);
    expect(list.body.data[0]).not.toHaveProperty("key");
    expect(list.body.data[0]).not.toHaveProperty("secret_hash");
    expect(JSON.stringify(list.body)).not.toContain(secret);
    expect(JSON.stringify(list.body)).not.toContain(secret.slice(-20));

    const row = await env.DB.prepare("SELECT * FROM api_keys WHERE id = ?1")
      .bind(created.body.id)
      .first<any>();
    expect(row.secret_hash).toBe(await sha256Hex(secret));
    for (const [column, value] of Object.entries(row)) {
      expect(String(value), column).not.toContain(secret.slice(-20));
    }
    // The whole database holds the secret nowhere.
    const tables = await env.DB.prepare(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name != 'd1_migrations'",
    ).all<{ name: string }>();
    for (const { name } of tables.results) {
      const { results } = await env.DB.prepare(`SELECT * FROM "${name}"`).all();
      expect(JSON.stringify(results), name).not.toContain(secret.slice(-20));
    }
    // ...and the secret works.
    const topup = await call("POST", `/admin/tenants/${tenant.body.id}/topups`, {
      admin: true,
      body: { amount_micros: 1_000_000, reason: "t" },
    });
    expect(topup.status).toBe(201);
    await expectKeyWorks(secret);
  });

  it("a key for an unknown tenant → 404", async () => {
    const res = await call("POST", "/admin/tenants/ten_01KV52C0TEJSYZMCG0NCS4YWKK/keys", {
      admin: true,
      body: { name: "x" },
    });
    expectError(res, 404, "not_found");
  });
});

describe("key states", () => {
  it("disabled → 403 key_disabled (nothing written); re-enabled → works again", async () => {
    const t = await tenantWithKey();
    const taskId = await expectKeyWorks(t.key);
    const disabled = await patchKey(t, { status: "disabled" });
    expect(disabled.status).toBe(200);
    expect(disabled.body.status).toBe("disabled");
    const before = await footprint(t);
    await expectKeyRefused(t.key, 403, "key_disabled", taskId);
    const after = await footprint(t);
    expect(after.tasks).toEqual(before.tasks);
    expect(after.ledger).toEqual(before.ledger);
    expect(after.balance).toBe(before.balance);

    const enabled = await patchKey(t, { status: "active" });
    expect(enabled.status).toBe(200);
    expect(enabled.body.status).toBe("active");
    await expectKeyWorks(t.key);
    expect((await get(t.key, taskId)).status).toBe(200);
  });

  it("revoked → 401 key_revoked, final: it cannot be re-enabled (409) or changed", async () => {
    const t = await tenantWithKey();
    const taskId = await expectKeyWorks(t.key);
    const revoked = await call("DELETE", `/admin/tenants/${t.tenantId}/keys/${t.keyId}`, { admin: true });
    expect(revoked.status).toBe(200);
    expect(revoked.body.status).toBe("revoked");
    expect(Date.parse(revoked.body.revoked_at)).toBeGreaterThan(Date.now() - 60_000);
    await expectKeyRefused(t.key, 401, "key_revoked", taskId);

    expectError(await patchKey(t, { status: "active" }), 409, "key_revoked");
    expectError(await patchKey(t, { name: "renamed" }), 409, "key_revoked");
    const list = await call("GET", `/admin/tenants/${t.tenantId}/keys`, { admin: true });
    expect(list.body.data[0]).toMatchObject({ status: "revoked", name: "server" });
    await expectKeyRefused(t.key, 401, "key_revoked");
    // Revoking twice keeps it revoked (and its first revocation time).
    const again = await call("DELETE", `/admin/tenants/${t.tenantId}/keys/${t.keyId}`, { admin: true });
    expect(again.body.status).toBe("revoked");
    expect(again.body.revoked_at).toBe(revoked.body.revoked_at);
  });

  it("expired (expires_at in the past) → 401 key_expired; a future expiry works", async () => {
    const past = new Date(Date.now() - 60_000).toISOString();
    const future = new Date(Date.now() + 3_600_000).toISOString();
    const expired = await tenantWithKey(1_000_000, { expires_at: past });
    const before = await footprint(expired);
    await expectKeyRefused(expired.key, 401, "key_expired");
    await expectNothingWritten(expired, before);

    const valid = await tenantWithKey(1_000_000, { expires_at: future });
    const taskId = await expectKeyWorks(valid.key);
    // Expiring an existing key by PATCH takes effect at once.
    expect((await patchKey(valid, { expires_at: past })).status).toBe(200);
    await expectKeyRefused(valid.key, 401, "key_expired", taskId);
    expect((await patchKey(valid, { expires_at: null })).status).toBe(200);
    await expectKeyWorks(valid.key);
  });

  it("allowed_actions: other actions → 403 action_not_allowed, nothing written", async () => {
    const t = await tenantWithKey(10_000_000, { allowed_actions: ["imagine", "upscale"] });
    const grid = expectSubmitted(await submit(t.key, "imagine", { prompt: marker() }));
    const before = await footprint(t);
    for (const [action, body] of [
      ["describe", { image_urls: ["https://example.com/a.png"] }],
      ["blend", { image_urls: ["https://example.com/a.png", "https://example.com/b.png"] }],
      ["variation", { task_id: grid, index: 1 }],
      ["video", { image_urls: ["https://example.com/a.png"] }],
      ["modal", { task_id: grid }],
    ] as const) {
      const error = expectError(await submit(t.key, action, body), 403, "action_not_allowed");
      expect(error.message).toContain(action);
    }
    const after = await footprint(t);
    expect(after.tasks).toEqual(before.tasks);
    expect(after.ledger).toEqual(before.ledger);
    expect(after.balance).toBe(before.balance);
    // The no-action path is imagine, which is allowed.
    expectSubmitted(
      await call("POST", "/v1/midjourney/generations", { key: t.key, body: { prompt: marker() } }),
    );
    // Widening the list by PATCH takes effect at once; null lifts the restriction.
    expect((await patchKey(t, { allowed_actions: ["describe"] })).status).toBe(200);
    expectSubmitted(await submit(t.key, "describe", { image_urls: ["https://example.com/a.png"] }));
    expectError(await submit(t.key, "imagine", { prompt: marker() }), 403, "action_not_allowed");
    expect((await patchKey(t, { allowed_actions: null })).status).toBe(200);
    expectSubmitted(await submit(t.key, "imagine", { prompt: marker() }));
  });

  it("a key cannot be changed through another tenant's path", async () => {
    const a = await tenantWithKey();
    const b = await tenantWithKey();
    const res = await call("PATCH", `/admin/tenants/${b.tenantId}/keys/${a.keyId}`, {
      admin: true,
      body: { status: "disabled" },
    });
    expectError(res, 404, "not_found");
    const del = await call("DELETE", `/admin/tenants/${b.tenantId}/keys/${a.keyId}`, { admin: true });
    expectError(del, 404, "not_found");
    await expectKeyWorks(a.key);
  });
});

describe("missing or garbage credentials → 401", () => {
  it("no Authorization, wrong scheme, garbage, unknown sk-mjg- key, the upstream key, the admin token", async () => {
    const t = await tenantWithKey();
    const before = await footprint(t);
    const path = "/v1/midjourney/generations/imagine";
    const body = JSON.stringify({ prompt: "x" });
    const cases: Array<[Record<string, string>, string]> = [
      [{}, "missing_api_key"],
      [{ authorization: "" }, "missing_api_key"],
      [{ authorization: "Bearer" }, "missing_api_key"],
      [{ authorization: `Basic ${btoa("user:pass")}` }, "missing_api_key"],
      [{ authorization: t.key }, "missing_api_key"],
      [{ authorization: "Bearer garbage" }, "invalid_api_key"],
      [{ authorization: `Bearer ${t.key}x` }, "invalid_api_key"],
      [{ authorization: `Bearer sk-mjg-AAAAAAAA-${"A".repeat(43)}` }, "invalid_api_key"],
      [{ authorization: "Bearer sk-sim-gateway-tests" }, "invalid_api_key"],
      [{ authorization: "Bearer test-admin-token" }, "invalid_api_key"],
    ];
    for (const [headers, code] of cases) {
      const response = await SELF.fetch(`http://gateway.test${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body,
      });
      const res = { status: response.status, body: await response.json<any>(), headers: response.headers };
      const error = expectError(res, 401, code);
      expect(error.type).toBe("authentication_error");
    }
    await expectNothingWritten(t, before);
  });
});

describe("admin endpoints need the admin token", () => {
  it("missing, wrong, or a tenant key → 401 admin_unauthorized on every admin route", async () => {
    const t = await tenantWithKey();
    const routes: Array<[string, string, unknown?]> = [
      ["GET", "/admin/tenants"],
      ["POST", "/admin/tenants", { name: "x" }],
      ["GET", `/admin/tenants/${t.tenantId}`],
      ["PATCH", `/admin/tenants/${t.tenantId}`, { status: "suspended" }],
      ["GET", `/admin/tenants/${t.tenantId}/keys`],
      ["POST", `/admin/tenants/${t.tenantId}/keys`, { name: "x" }],
      ["PATCH", `/admin/tenants/${t.tenantId}/keys/${t.keyId}`, { status: "disabled" }],
      ["DELETE", `/admin/tenants/${t.tenantId}/keys/${t.keyId}`],
      ["POST", `/admin/tenants/${t.tenantId}/topups`, { amount_micros: 1, reason: "x" }],
    ];
    const tenantsBefore = (await env.DB.prepare("SELECT COUNT(*) AS n FROM tenants").first<{ n: number }>())!
      .n;
    for (const [method, path, body] of routes) {
      for (const authorization of [
        undefined,
        "Bearer wrong-token",
        "Bearer test-admin-token-x",
        "Bearer test-admin-toke",
        `Bearer ${t.key}`,
        "test-admin-token",
      ]) {
        const headers: Record<string, string> = authorization ? { authorization } : {};
        const res = await call(method, path, { body, headers });
        const error = expectError(res, 401, "admin_unauthorized");
        expect(error.message).not.toContain("test-admin-token");
      }
    }
    // Nothing changed: the key still works, the tenant is active, no tenant was created.
    const tenantsAfter = (await env.DB.prepare("SELECT COUNT(*) AS n FROM tenants").first<{ n: number }>())!
      .n;
    expect(tenantsAfter).toBe(tenantsBefore);
    await expectKeyWorks(t.key);
    expect((await call("GET", `/admin/tenants/${t.tenantId}`, { admin: true })).body.status).toBe("active");
    // And the right token works.
    expect(
      (await call("GET", "/admin/tenants", { headers: { authorization: ADMIN.authorization } })).status,
    ).toBe(200);
  });
});

describe("tenant CRUD", () => {
  it("create → get → patch; unknown tenant → 404", async () => {
    const name = marker("tenant");
    const created = await call("POST", "/admin/tenants", {
      admin: true,
      body: {
        name,
        price_multiplier_bps: 15_000,
        max_inflight: 7,
        cors_origins: ["https://app.example.com"],
      },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name,
      status: "active",
      balance_micros: 0,
      price_multiplier_bps: 15_000,
      inflight: 0,
      max_inflight: 7,
      cors_origins: ["https://app.example.com"],
    });
    expect(created.body.id).toMatch(/^ten_[0-9A-Z]{26}$/);
    expect(Date.parse(created.body.created_at)).toBeGreaterThan(Date.now() - 60_000);

    const fetched = await call("GET", `/admin/tenants/${created.body.id}`, { admin: true });
    expect(fetched.status).toBe(200);
    expect(fetched.body).toEqual(created.body);

    const patched = await call("PATCH", `/admin/tenants/${created.body.id}`, {
      admin: true,
      body: { name: `${name}-renamed`, price_multiplier_bps: 9_000 },
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toEqual({ ...created.body, name: `${name}-renamed`, price_multiplier_bps: 9_000 });

    expectError(
      await call("GET", "/admin/tenants/ten_01KV52C0TEJSYZMCG0NCS4YWKK", { admin: true }),
      404,
      "not_found",
    );
    expectError(
      await call("PATCH", "/admin/tenants/ten_01KV52C0TEJSYZMCG0NCS4YWKK", {
        admin: true,
        body: { name: "x" },
      }),
      404,
      "not_found",
    );
    expectError(
      await call("GET", "/admin/tenants/ten_01KV52C0TEJSYZMCG0NCS4YWKK/keys", { admin: true }),
      404,
      "not_found",
    );
  });

  it("list pages through every tenant exactly once with the cursor", async () => {
    const mine: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await call("POST", "/admin/tenants", { admin: true, body: { name: marker("page") } });
      mine.push(res.body.id);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor ? `?limit=2&cursor=${encodeURIComponent(cursor)}` : "?limit=2";
      const page = await call("GET", `/admin/tenants${query}`, { admin: true });
      expect(page.status).toBe(200);
      expect(page.body.data.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.data.map((t: any) => t.id));
      cursor = page.body.next_cursor;
      if (cursor !== null) expect(page.body.data).toHaveLength(2);
      pages++;
      expect(pages).toBeLessThan(1000);
    } while (cursor !== null);
    expect(new Set(seen).size).toBe(seen.length);
    for (const id of mine) expect(seen).toContain(id);
    const total = (await env.DB.prepare("SELECT COUNT(*) AS n FROM tenants").first<{ n: number }>())!.n;
    expect(seen).toHaveLength(total);
    // limit out of range → 400
    expectError(await call("GET", "/admin/tenants?limit=0", { admin: true }), 400, "invalid_request");
    expectError(await call("GET", "/admin/tenants?limit=501", { admin: true }), 400, "invalid_request");
  });

  it("suspending a tenant → its keys get 403 tenant_suspended; reactivating restores them", async () => {
    const t = await tenantWithKey();
    const taskId = await expectKeyWorks(t.key);
    const second = await call("POST", `/admin/tenants/${t.tenantId}/keys`, {
      admin: true,
      body: { name: "b" },
    });
    const suspended = await call("PATCH", `/admin/tenants/${t.tenantId}`, {
      admin: true,
      body: { status: "suspended" },
    });
    expect(suspended.status).toBe(200);
    expect(suspended.body.status).toBe("suspended");
    const before = await footprint(t);
    await expectKeyRefused(t.key, 403, "tenant_suspended", taskId);
    await expectKeyRefused(second.body.key, 403, "tenant_suspended");
    const after = await footprint(t);
    expect(after.tasks).toEqual(before.tasks);
    expect(after.ledger).toEqual(before.ledger);

    // Other tenants are not affected.
    await expectKeyWorks((await tenantWithKey()).key);

    const active = await call("PATCH", `/admin/tenants/${t.tenantId}`, {
      admin: true,
      body: { status: "active" },
    });
    expect(active.body.status).toBe("active");
    await expectKeyWorks(t.key);
    await expectKeyWorks(second.body.key);
  });

  it("the price multiplier set by PATCH is what the next task costs", async () => {
    const t = await tenantWithKey();
    expect(
      (
        await call("PATCH", `/admin/tenants/${t.tenantId}`, {
          admin: true,
          body: { price_multiplier_bps: 20_000 },
        })
      ).status,
    ).toBe(200);
    const id = expectSubmitted(await submit(t.key, "imagine", { prompt: marker() }));
    const view = await get(t.key, id);
    // imagine relax: 45040 list + 20% markup = 54048, × 2
    expect(view.body.cost).toBe(0.108096);
  });
});

describe("lowering a cap below what is in flight", () => {
  it("answers 409 naming max_inflight and changes nothing", async () => {
    const t = await tenantWithKey();
    for (let i = 0; i < 2; i++)
      expect((await submit(t.key, "imagine", { prompt: `in flight ${i}` })).status).toBe(200);
    const key = await call("PATCH", `/admin/tenants/${t.tenantId}/keys/${t.keyId}`, {
      admin: true,
      body: { max_inflight: 1 },
    });
    expect(key.status, JSON.stringify(key.body)).toBe(409);
    expect(key.body.error.field).toBe("max_inflight");
    const tenant = await call("PATCH", `/admin/tenants/${t.tenantId}`, {
      admin: true,
      body: { max_inflight: 1 },
    });
    expect(tenant.status, JSON.stringify(tenant.body)).toBe(409);
    const row = await env.DB.prepare("SELECT max_inflight FROM api_keys WHERE id = ?1").bind(t.keyId).first();
    expect(row).toEqual({ max_inflight: 10_000 });
  });
});
