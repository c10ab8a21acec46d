/**
 * The upstream pool's "done when" (issue 13), against the real stack: two more simulator
 * processes, started here, are pool members; one refuses every submit (500 with an error body,
 * a clear refusal). A tenant's submits all succeed through the other, follow-ups go to their
 * parent's upstream, no upstream ever holds more than its cap, tasks beyond every cap are
 * queued and finish, and the ledger is exact throughout.
 */
import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error plain ES module shared with `npm start`
import { ROOT, waitFor, wranglerDev } from "../scripts/stack.mjs";
import { api, tenantWithKey } from "./support";

const CAP = 2;
const BASE_PORT = Number(process.env.E2E_POOL_PORT ?? 8861);
const children: ChildProcess[] = [];

function startSimulator(port: number): string {
  const persistTo = join(ROOT, ".wrangler", `e2e-pool-${port}`);
  rmSync(persistTo, { recursive: true, force: true });
  const child = wranglerDev(
    [
      "-c",
      "simulator/wrangler.toml",
      "--port",
      String(port),
      "--inspector-port",
      String(port + 10_000),
      "--var",
      "SIM_TIME_SCALE:0.02",
      "--persist-to",
      persistTo,
    ],
    () => {},
  );
  children.push(child);
  return `http://127.0.0.1:${port}`;
}

async function sim(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return res.json() as Promise<any>;
}

async function member(name: string, baseUrl: string, settings: Record<string, unknown>) {
  const res = await api("POST", "/admin/upstreams", {
    admin: true,
    body: {
      name,
      base_url: baseUrl,
      api_key: `sk-sim-${name}-${Date.now()}`,
      max_inflight: CAP,
      ...settings,
    },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  added.push(res.body.id as string);
  return res.body.id as string;
}

/** Members this file added: the stack is shared with the other e2e files, so they leave with it. */
const added: string[] = [];
/** How long routing may still use the pool's settings it cached (src/db/upstreams.ts). */
const POOL_CACHE_MS = 5_000;

async function untilDone(taskId: string, key: string) {
  for (let i = 0; i < 600; i++) {
    const task = (await api("GET", `/v1/midjourney/${taskId}`, { key })).body;
    if (["SUCCESS", "FAILURE", "CANCEL"].includes(task.status)) return task;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${taskId} did not finish`);
}

let healthy: string;
let refusing: string;

beforeAll(async () => {
  healthy = startSimulator(BASE_PORT);
  refusing = startSimulator(BASE_PORT + 1);
  await waitFor(`${healthy}/_sim/stats`, 90_000, children[0]);
  await waitFor(`${refusing}/_sim/stats`, 90_000, children[1]);
  // Every submit to this one is refused with an error body: a clear refusal, tried elsewhere.
  await sim(refusing, "POST", "/_sim/faults", { type: "status", status: 500, on: "submit", count: "always" });
}, 180_000);

afterAll(async () => {
  // The pool as the other files expect it: the default member alone, before the servers go.
  for (const id of added) await api("DELETE", `/admin/upstreams/${id}`, { admin: true });
  await api("PATCH", "/admin/upstreams/default", { admin: true, body: { enabled: true } });
  await new Promise((resolve) => setTimeout(resolve, POOL_CACHE_MS + 1_000));
  for (const child of children) child.kill("SIGTERM");
}, 60_000);

describe("an upstream pool of two servers, one refusing every submit", () => {
  it("every submit succeeds through the other, follow-ups stay on it, no cap is passed, the excess queues and finishes, ledger exact", async () => {
    await api("PATCH", "/admin/upstreams/default", { admin: true, body: { enabled: false } });
    // The refusing member is preferred, so every new task is tried there first.
    await member("refusing", refusing, { priority: 0 });
    await member("healthy", healthy, { priority: 1 });
    const { tenantId, key } = await tenantWithKey({ balanceMicros: 100_000_000 });

    const submits = await Promise.all(
      Array.from({ length: 4 * CAP }, (_, i) =>
        api("POST", "/v1/midjourney/generations/imagine", { key, body: { prompt: `pool fox ${i}` } }),
      ),
    );
    for (const res of submits) expect(res.status, JSON.stringify(res.body)).toBe(200);
    const imagines = submits.map((res) => res.body.data[0].task_id as string);
    const waiting = await Promise.all(imagines.map((id) => api("GET", `/v1/midjourney/${id}`, { key })));
    expect(waiting.filter((res) => res.body.queue_position !== undefined).length).toBeGreaterThan(0);
    for (const id of imagines) {
      const task = await untilDone(id, key);
      expect(task.status, JSON.stringify(task)).toBe("SUCCESS");
    }

    const upscales = await Promise.all(
      imagines.map((id) =>
        api("POST", "/v1/midjourney/generations/upscale", { key, body: { task_id: id, index: 1 } }),
      ),
    );
    for (const res of upscales) expect(res.status, JSON.stringify(res.body)).toBe(200);
    for (const res of upscales)
      expect((await untilDone(res.body.data[0].task_id, key)).status).toBe("SUCCESS");

    const good = await sim(healthy, "GET", "/_sim/stats");
    const bad = await sim(refusing, "GET", "/_sim/stats");
    expect(good.submits_accepted).toBe(8 * CAP);
    expect(good.peak_open_tasks).toBeLessThanOrEqual(CAP);
    expect(bad.submits_accepted).toBe(0);
    expect(bad.submits_refused).toBeGreaterThan(0);

    const ledger = (await api("GET", `/admin/ledger?tenant_id=${tenantId}&limit=1000`, { admin: true })).body;
    const rows: any[] = ledger.data ?? ledger.entries ?? ledger;
    expect(rows.filter((row) => row.kind === "charge")).toHaveLength(8 * CAP);
    expect(rows.filter((row) => row.kind === "refund")).toHaveLength(0);
    const account = (await api("GET", "/v1/account", { key })).body;
    const sum = rows.reduce((total, row) => total + (row.amount_micros ?? row.amount), 0);
    expect(account.tenant.balance_micros).toBe(sum);
    const reconciliation = (await api("GET", "/admin/reconciliation", { admin: true })).body;
    const ours = reconciliation.breaches.filter((b: unknown) => JSON.stringify(b).includes(tenantId));
    expect(ours).toEqual([]);
  }, 300_000);
});
