/**
 * The upstream pool through /admin/upstreams: the env-configured member `default` is always
 * there (URL and key hint from the environment, settings editable, never deleted nor given
 * credentials); added members' keys are sealed at rest and never returned; base_url is
 * https outside development; DELETE disables; a missing UPSTREAM_KEY_SECRET is a 500 naming it.
 */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { afterAll, describe, expect, it, vi } from "vitest";
import { createApp } from "../../src/app";
import { getUpstream, updateUpstream } from "../../src/db/upstreams";
import { openKey, sealKey } from "../../src/domain/upstream-crypto";
import type { Env } from "../../src/env";
import { forgetCachedCostsToday } from "../../src/services/upstreams";
import { finish, LIST_IMAGINE, taskIdOf } from "../db/money-helpers";
import { ADMIN, call, submit, tenantWithKey } from "../helpers";
import { expectError, marker, TEST_UPSTREAM_KEY } from "./route-helpers";

const SECRET = "test-upstream-key-secret";
const newKey = () => `sk-${crypto.randomUUID()}`;

async function create(body: Record<string, unknown> = {}) {
  return call("POST", "/admin/upstreams", {
    admin: true,
    body: { name: marker("acct"), base_url: "https://mj.example.com/api/", api_key: newKey(), ...body },
  });
}

const patch = (id: string, body: unknown) => call("PATCH", `/admin/upstreams/${id}`, { admin: true, body });

/** The app with some variables changed, as configuration.test.ts calls it. */
async function adminRequestWith(overrides: Partial<Env>, method: string, path: string, body?: unknown) {
  const ctx = createExecutionContext();
  const log = vi.spyOn(console, "log").mockImplementation(() => {});
  const res = await createApp().fetch(
    new Request(`http://gateway.test${path}`, { method, headers: ADMIN, body: JSON.stringify(body) }),
    { ...env, ...overrides },
    ctx,
  );
  await waitOnExecutionContext(ctx);
  log.mockRestore();
  return { status: res.status, body: (await res.json()) as any, headers: res.headers };
}

afterAll(async () => {
  // Leave the default member as the migration made it for the other test files.
  await updateUpstream(env.DB, "default", {
    weight: 100,
    priority: 0,
    max_inflight: 100,
    actions: null,
    enabled: true,
  });
});

describe("the default member", () => {
  it("is listed first, its URL and key hint read from the environment", async () => {
    const list = await call("GET", "/admin/upstreams", { admin: true });
    expect(list.status).toBe(200);
    expect(list.body.data[0]).toMatchObject({
      id: "default",
      base_url: "http://upstream.test",
      key_hint: TEST_UPSTREAM_KEY.slice(-4),
      source: "environment",
      weight: 100,
      priority: 0,
      max_inflight: 100,
      actions: null,
      enabled: true,
      disabled_at: null,
    });
    expect(JSON.stringify(list.body)).not.toContain(TEST_UPSTREAM_KEY);
    expect((await call("GET", "/admin/upstreams/default", { admin: true })).body.id).toBe("default");
  });

  it("takes new settings, but neither a URL, a key nor a DELETE (409 upstream_default_fixed)", async () => {
    const changed = await patch("default", {
      weight: 7,
      priority: -1,
      max_inflight: 3,
      actions: ["imagine"],
    });
    expect(changed.status, JSON.stringify(changed.body)).toBe(200);
    expect(changed.body).toMatchObject({ weight: 7, priority: -1, max_inflight: 3, actions: ["imagine"] });
    const url = expectError(
      await patch("default", { base_url: "https://other.example.com" }),
      409,
      "upstream_default_fixed",
    );
    expect(url.field).toBe("base_url");
    expect(url.message).toContain("UPSTREAM_BASE_URL");
    expect(
      expectError(await patch("default", { api_key: newKey() }), 409, "upstream_default_fixed").field,
    ).toBe("api_key");
    expectError(
      await call("DELETE", "/admin/upstreams/default", { admin: true }),
      409,
      "upstream_default_fixed",
    );
    expect((await getUpstream(env.DB, "default"))!.enabled).toBe(1);
  });

  it("can never hold credentials in D1 (a named CHECK, as a typed refusal)", async () => {
    const key = await sealKey(SECRET, "default", newKey());
    expect(await updateUpstream(env.DB, "default", { base_url: "https://x.example.com", key })).toEqual({
      refused: "upstream_credentials",
    });
  });
});

describe("added members", () => {
  it("are created with the column defaults; the key is sealed to its row and never returned", async () => {
    const apiKey = newKey();
    const created = await create({ api_key: apiKey });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({
      id: expect.stringMatching(/^ups_[0-9A-Z]{26}$/),
      base_url: "https://mj.example.com/api",
      key_hint: apiKey.slice(-4),
      source: "api",
      weight: 100,
      priority: 0,
      max_inflight: 100,
      actions: null,
      enabled: true,
      disabled_at: null,
    });
    const id = created.body.id;
    for (const res of [created, await call("GET", `/admin/upstreams/${id}`, { admin: true })]) {
      expect(JSON.stringify(res.body)).not.toContain(apiKey);
      expect(Object.keys(res.body)).not.toContain("api_key");
    }
    const row = (await getUpstream(env.DB, id))!;
    expect(JSON.stringify(row)).not.toContain(apiKey);
    expect(await openKey(SECRET, id, { ciphertext: row.api_key_ciphertext!, iv: row.api_key_iv! })).toBe(
      apiKey,
    );
    await expect(
      openKey(SECRET, "ups_another", { ciphertext: row.api_key_ciphertext!, iv: row.api_key_iv! }),
    ).rejects.toThrow();
    await expect(
      openKey("another-secret", id, { ciphertext: row.api_key_ciphertext!, iv: row.api_key_iv! }),
    ).rejects.toThrow();
  });

  it("take settings on creation and by PATCH; a new key is resealed", async () => {
    const created = await create({
      weight: 1000,
      priority: 2,
      max_inflight: 5,
      actions: ["imagine", "upscale"],
    });
    expect(created.body).toMatchObject({
      weight: 1000,
      priority: 2,
      max_inflight: 5,
      actions: ["imagine", "upscale"],
    });
    const id = created.body.id;
    const apiKey = newKey();
    const changed = await patch(id, {
      weight: 1,
      actions: null,
      api_key: apiKey,
      base_url: "https://b.example.com",
    });
    expect(changed.status, JSON.stringify(changed.body)).toBe(200);
    expect(changed.body).toMatchObject({
      weight: 1,
      actions: null,
      key_hint: apiKey.slice(-4),
      base_url: "https://b.example.com",
    });
    const row = (await getUpstream(env.DB, id))!;
    expect(await openKey(SECRET, id, { ciphertext: row.api_key_ciphertext!, iv: row.api_key_iv! })).toBe(
      apiKey,
    );
  });

  it("DELETE disables (and stays listed); PATCH enabled brings it back", async () => {
    const id = (await create()).body.id;
    const removed = await call("DELETE", `/admin/upstreams/${id}`, { admin: true });
    expect(removed.status).toBe(204);
    const shown = await call("GET", `/admin/upstreams/${id}`, { admin: true });
    expect(shown.body.enabled).toBe(false);
    expect(shown.body.disabled_at).toMatch(/^\d{4}-/);
    const listed = await call("GET", "/admin/upstreams", { admin: true });
    expect(listed.body.data.map((u: { id: string }) => u.id)).toContain(id);
    const back = await patch(id, { enabled: true });
    expect(back.body).toMatchObject({ enabled: true, disabled_at: null });
  });

  it("show their gate live: tasks in flight and waiting, circuit, window, submits and their median", async () => {
    const id = (await create({ max_inflight: 1 })).body.id;
    const gate = env.UPSTREAM_GATES.get(env.UPSTREAM_GATES.idFromName(id));
    await gate.acquire("task_live_a", { maxInflight: 1, queueBound: 5 });
    await gate.acquire("task_live_b", { maxInflight: 1, queueBound: 5 });
    await gate.record(id, { kind: "error", message: "upstream 503" }, { ms: 900, ok: false });
    await gate.record(id, null, { ms: 40, ok: true }); // a refused request: timed, not a health outcome
    await gate.record(id, { kind: "ok" }, { ms: 60, ok: true });
    await gate.record(id, { kind: "ok" }); // a poll: health only
    const shown = await call("GET", `/admin/upstreams/${id}`, { admin: true });
    expect(shown.body.live).toEqual({
      inflight: 1,
      queued: 1,
      circuit: "closed",
      admitting: true,
      window_samples: 3,
      window_errors: 1,
      last_error: "upstream 503",
      submits_in_window: 3,
      submit_failures_in_window: 1,
      p50_submit_ms: 60,
    });
    expect(shown.body.upstream_cost_today_micros).toBe(0);
  });

  it("a task's submit is timed on its member, and what the member billed today is shown once it succeeds", async () => {
    const before = (await call("GET", "/admin/upstreams/default", { admin: true })).body;
    const t = await tenantWithKey(1_000_000);
    const id = taskIdOf(await submit(t.key, "imagine", { prompt: marker("cost"), speed: "fast" }));
    expect((await finish(id, t.key)).status).toBe("SUCCESS");
    forgetCachedCostsToday();
    const after = (await call("GET", "/admin/upstreams", { admin: true })).body.data[0];
    expect(after.id).toBe("default");
    expect(after.live.submits_in_window).toBe(before.live.submits_in_window + 1);
    expect(after.live.p50_submit_ms).toEqual(expect.any(Number));
    expect(after.upstream_cost_today_micros).toBe(before.upstream_cost_today_micros + LIST_IMAGINE.fast);
  });

  it("unknown ids are 404 for every verb", async () => {
    expectError(await call("GET", "/admin/upstreams/ups_nope", { admin: true }), 404, "not_found");
    expectError(await patch("ups_nope", { weight: 2 }), 404, "not_found");
    expectError(await call("DELETE", "/admin/upstreams/ups_nope", { admin: true }), 404, "not_found");
  });
});

describe("validation", () => {
  it.each([
    [{ base_url: "http://mj.example.com" }, "base_url"],
    [{ base_url: "https://10.0.0.1/api" }, "base_url"],
    [{ base_url: "https://localhost:8080" }, "base_url"],
    [{ base_url: "https://mj.example.com/?key=1" }, "base_url"],
    [{ weight: 0 }, "weight"],
    [{ weight: 1001 }, "weight"],
    [{ max_inflight: 0 }, "max_inflight"],
    [{ actions: ["paint"] }, "actions"],
    [{ actions: [] }, "actions"],
    [{ api_key: "" }, "api_key"],
    [{ surprise: 1 }, undefined],
  ])("refuses %j with 400 invalid_request", async (body, field) => {
    const error = expectError(await create(body), 400, "invalid_request");
    if (field) expect(error.field ?? error.message).toContain(field);
  });

  it("allows loopback http in development only", async () => {
    const body = { name: "local", base_url: "http://127.0.0.1:9000", api_key: newKey() };
    const dev = await adminRequestWith({ ENVIRONMENT: "development" }, "POST", "/admin/upstreams", body);
    expect(dev.status, JSON.stringify(dev.body)).toBe(201);
    expect(dev.body.base_url).toBe("http://127.0.0.1:9000");
    expect((await call("POST", "/admin/upstreams", { admin: true, body })).status).toBe(400);
  });

  it("a missing UPSTREAM_KEY_SECRET is a 500 configuration_error naming it, and nothing is written", async () => {
    const name = marker("nosecret");
    const res = await adminRequestWith({ UPSTREAM_KEY_SECRET: undefined }, "POST", "/admin/upstreams", {
      name,
      base_url: "https://mj.example.com",
      api_key: newKey(),
    });
    expect(res.status).toBe(500);
    expect(res.body.error.code).toBe("configuration_error");
    expect(res.body.error.message).toContain("UPSTREAM_KEY_SECRET");
    const { results } = await env.DB.prepare("SELECT id FROM upstreams WHERE name = ?1").bind(name).all();
    expect(results).toEqual([]);
    // Listing and the default member need no secret.
    expect(
      (await adminRequestWith({ UPSTREAM_KEY_SECRET: undefined }, "GET", "/admin/upstreams")).status,
    ).toBe(200);
  });
});
