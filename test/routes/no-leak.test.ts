/**
 * The upstream key never leaks: a full flow through every action, every query shape,
 * the account, the admin views and the error paths (the gateway's own, the upstream's
 * refusals and injected upstream faults) — no response body or header carries it, and
 * neither does anything the gateway stored in D1.
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { call, driveToEnd, type TenantWithKey, tenantWithKey } from "../helpers";
import { BASE_URL, expectSubmitted, fault, marker, TEST_UPSTREAM_KEY } from "./route-helpers";

interface Recorded {
  what: string;
  status: number;
  text: string;
  headers: string;
}

const recorded: Recorded[] = [];

async function rec(method: string, path: string, options: Parameters<typeof call>[2] = {}) {
  const res = await call(method, path, options);
  recorded.push({
    what: `${method} ${path}`,
    status: res.status,
    text: typeof res.body === "string" ? res.body : JSON.stringify(res.body),
    headers: [...res.headers].map(([k, v]) => `${k}: ${v}`).join("\n"),
  });
  return res;
}

const post = (t: TenantWithKey, action: string, body: unknown) =>
  rec("POST", `/v1/midjourney/generations/${action}`, { key: t.key, body });

/** Submit, drive to the end, and record the task in both query shapes. */
async function flow(
  t: TenantWithKey,
  action: string,
  body: unknown,
  status: "submitted" | "modal" = "submitted",
) {
  const id = expectSubmitted(await post(t, action, body), status);
  await rec("GET", `/v1/midjourney/${id}`, { key: t.key });
  if (status === "modal") return id;
  await driveToEnd(id, t.key);
  const view = await rec("GET", `/v1/midjourney/${id}`, { key: t.key });
  await rec("GET", `/v1/tasks/${id}`, { key: t.key });
  expect(view.body.status, `${action}: ${JSON.stringify(view.body)}`).toBe("SUCCESS");
  return id;
}

/** Reads a stream for at most `ms` (it should end by itself after a terminal event). */
async function readStream(path: string, key: string, ms = 3_000) {
  const response = await SELF.fetch(`http://gateway.test${path}`, {
    headers: { authorization: `Bearer ${key}` },
  });
  let text = "";
  if (response.body) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const chunk = await Promise.race([
        reader.read(),
        new Promise<null>((resolve) => setTimeout(() => resolve(null), Math.max(1, deadline - Date.now()))),
      ]);
      if (chunk === null || chunk.done) break;
      text += decoder.decode(chunk.value, { stream: true });
    }
    await reader.cancel().catch(() => {});
  }
  recorded.push({
    what: `GET ${path} (stream)`,
    status: response.status,
    text,
    headers: [...response.headers].map(([k, v]) => `${k}: ${v}`).join("\n"),
  });
}

describe("the upstream key never leaks", () => {
  it("appears in no response of a full flow, and nowhere in D1", async () => {
    const t = await tenantWithKey(100_000_000);
    const other = await tenantWithKey(1_000_000);

    // Every action, happy path.
    const grid = await flow(t, "imagine", { prompt: marker("leak grid"), metadata: { a: 1 } });
    expectSubmitted(
      await rec("POST", "/v1/midjourney/generations", { key: t.key, body: { prompt: marker() } }),
    );
    await flow(t, "edits", { prompt: marker("leak edits"), image_urls: [BASE_URL] });
    await flow(t, "blend", { image_urls: [BASE_URL, BASE_URL] });
    await flow(t, "describe", { image_urls: [BASE_URL] });
    const upscaled = await flow(t, "upscale", { task_id: grid, index: 1 });
    await flow(t, "variation", { task_id: grid, index: 2 });
    await flow(t, "high-variation", { task_id: grid, index: 3 });
    await flow(t, "low-variation", { task_id: upscaled, index: 1 });
    await flow(t, "reroll", { task_id: grid });
    await flow(t, "zoom", { task_id: upscaled, zoom_ratio: 2 });
    await flow(t, "pan", { task_id: upscaled, direction: "down" });
    const inpaint = await flow(t, "inpaint", { task_id: upscaled }, "modal");
    expectSubmitted(
      await post(t, "modal", { task_id: inpaint, prompt: marker("leak modal"), mask_url: BASE_URL }),
    );
    await driveToEnd(inpaint, t.key);
    await rec("GET", `/v1/midjourney/${inpaint}`, { key: t.key });
    await flow(t, "video", { image_urls: [BASE_URL], batch_size: 2 });
    await flow(t, "video", { task_id: grid, index: 1 });
    await flow(t, "remix-strong", { task_id: grid, index: 1, prompt: marker() });
    await flow(t, "remix-subtle", { task_id: grid, index: 2 });

    // The gateway's own refusals.
    await post(t, "imagine", { prompt: "x", stylize: 1001 });
    await post(t, "imagine", "{not json");
    await post(other, "upscale", { task_id: grid, index: 1 });
    await rec("GET", `/v1/midjourney/${grid}`, { key: other.key });
    await rec("GET", "/v1/midjourney/task_01KV52C0TEJSYZMCG0NCS4YWKK", { key: t.key });
    await rec("GET", "/v1/midjourney/garbage", { key: t.key });
    await rec("POST", "/v1/midjourney/generations/imagine", { body: { prompt: "x" } });
    await rec("POST", "/v1/midjourney/generations/imagine", {
      body: { prompt: "x" },
      headers: { authorization: `Bearer ${TEST_UPSTREAM_KEY}` },
    });
    const pending = expectSubmitted(await post(t, "imagine", { prompt: marker() }));
    await post(t, "upscale", { task_id: pending, index: 1 });
    // The upstream's refusals (passed through) and its faults.
    await post(t, "zoom", { task_id: grid });
    await post(t, "inpaint", { task_id: grid });
    for (const spec of [
      { type: "status", status: 401 },
      { type: "status", status: 403 },
      { type: "status", status: 400 },
      { type: "status", status: 429, retry_after: 3 },
      { type: "status", status: 500 },
      { type: "status", status: 502 },
      { type: "garbage" },
      { type: "html" },
      { type: "truncated" },
      { type: "hang", delay_ms: 5_000 },
    ]) {
      const prompt = marker("leak fault");
      await fault({ on: "submit", prompt_contains: prompt, ...spec });
      const res = await post(t, "imagine", { prompt });
      expect(res.status, JSON.stringify(spec)).toBeGreaterThanOrEqual(400);
    }
    // A task that fails upstream while we poll it.
    const failing = expectSubmitted(await post(t, "imagine", { prompt: `${marker()} [sim:fail]` }));
    await driveToEnd(failing, t.key);
    await rec("GET", `/v1/midjourney/${failing}`, { key: t.key });
    await rec("GET", `/v1/tasks/${failing}`, { key: t.key });

    // Account, streams and the admin views.
    await rec("GET", "/v1/account", { key: t.key });
    await rec("GET", "/v1/usage", { key: t.key });
    await readStream(`/v1/midjourney/${grid}/events`, t.key);
    await rec("GET", `/admin/tenants/${t.tenantId}`, { admin: true });
    await rec("GET", `/admin/tenants/${t.tenantId}/keys`, { admin: true });
    await rec("GET", "/admin/tenants", { admin: true });
    await rec("GET", `/admin/ledger?tenant_id=${t.tenantId}`, { admin: true });
    await rec("GET", "/admin/ledger.csv", { admin: true });
    await rec("GET", "/admin/usage", { admin: true });
    await rec("GET", "/admin/reconciliation", { admin: true });
    await rec("GET", "/admin/prices", { admin: true });
    await rec("GET", "/openapi.json");
    await rec("GET", "/health");
    await rec("GET", "/nope");

    expect(recorded.length).toBeGreaterThan(80);
    // The views that must have answered did answer (a leak check of 404 pages proves little).
    const answered = (prefix: string) =>
      recorded.filter((r) => r.what.startsWith(prefix) && r.status === 200);
    for (const prefix of [
      "GET /v1/account",
      "GET /v1/usage",
      "GET /admin/ledger",
      "GET /admin/reconciliation",
    ]) {
      expect(answered(prefix).length, prefix).toBeGreaterThan(0);
    }
    expect(answered("GET /openapi.json")).toHaveLength(1);
    expect(answered("GET /v1/tasks/").length).toBeGreaterThan(15);
    const leaks = recorded.filter(
      (r) => r.text.includes(TEST_UPSTREAM_KEY) || r.headers.includes(TEST_UPSTREAM_KEY),
    );
    expect(leaks.map((r) => `${r.what} → ${r.status}`)).toEqual([]);
    // Not even a fragment of it, nor the simulator's key prefix.
    const fragments = recorded.filter((r) => /sk-sim-/.test(r.text) || /sk-sim-/.test(r.headers));
    expect(fragments.map((r) => r.what)).toEqual([]);

    // Nothing stored in D1 holds it either.
    const tables = await env.DB.prepare(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'",
    ).all<{ name: string }>();
    for (const { name } of tables.results) {
      const { results } = await env.DB.prepare(`SELECT * FROM "${name}"`).all();
      expect(JSON.stringify(results), name).not.toContain(TEST_UPSTREAM_KEY);
    }
  }, 120_000);
});
