/**
 * Money safety against hostile and careless input (issue: the reseller never pays for work
 * it did not charge). Everything runs against the real simulator, which does what the
 * upstream does for `repeat` and for parameters inside the prompt.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { admit } from "../../src/db/admission";
import { newTaskId } from "../../src/domain/ids";
import { finish, PRICE_IMAGINE, row, rows, snapshot, uid, upscaledParent } from "../db/money-helpers";
import { call, reconciliation, submit, taskStub, tenantWithKey } from "../helpers";
import { simTasks } from "./route-helpers";

const LIST_TURBO_USD = 0.1;

async function upstreamTaskOf(taskId: string) {
  const task = await row<{ upstream_task_id: string | null }>(
    "SELECT upstream_task_id FROM tasks WHERE id = ?1",
    taskId,
  );
  const all = (await simTasks()) as unknown as Array<{ id: string; cost: number; speed: string | null }>;
  return all.find((s) => s.id === task?.upstream_task_id);
}

describe("parameters inside the prompt are priced the way the upstream bills them", () => {
  it("--turbo without a speed field is charged turbo, and the upstream billed turbo", async () => {
    const t = await tenantWithKey(5_000_000);
    const res = await submit(t.key, "imagine", { prompt: `a fox ${uid()} --turbo` });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const taskId = res.body.data[0].task_id;
    const charge = await row<{ amount: number }>(
      "SELECT amount FROM ledger WHERE task_id = ?1 AND kind = 'charge'",
      taskId,
    );
    expect(charge!.amount).toBe(-PRICE_IMAGINE.turbo);
    await finish(taskId, t.key);
    const upstream = await upstreamTaskOf(taskId);
    expect(upstream!.cost).toBe(LIST_TURBO_USD);
    const task = await row<{ upstream_cost: number; net_charge: number }>(
      "SELECT upstream_cost, net_charge FROM tasks WHERE id = ?1",
      taskId,
    );
    expect(task!.upstream_cost).toBe(100_000);
    expect(task!.net_charge).toBeGreaterThanOrEqual(task!.upstream_cost);
  });

  it.each([
    [{ prompt: "a --turbo", speed: "relax" }, "prompt"],
    [{ prompt: "a --fast --turbo" }, "prompt"],
    [{ prompt: "a --r 3", repeat: 2 }, "prompt"],
    [{ prompt: "a --repeat 41" }, "prompt"],
    [{ prompt: "a", negative_prompt: "x --turbo" }, "negative_prompt"],
    [{ prompt: "a {1,2,3,4,5,6,7} {1,2,3,4,5,6,7}" }, "prompt"],
    [{ prompt: "a --video" }, "prompt"],
  ])("%j is refused with a 400 naming %s, and nothing is charged, forwarded or held", async (body, field) => {
    const t = await tenantWithKey(5_000_000);
    const before = await snapshot();
    const upstreamBefore = (await simTasks()).length;
    const res = await submit(t.key, "imagine", { ...body, prompt: `${body.prompt} ${uid()}` });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: "invalid_request", field });
    expect(await snapshot()).toEqual(before);
    expect((await simTasks()).length).toBe(upstreamBefore);
  });
});

describe("repeat: N jobs are N tasks, N charges in one admission, each settled on its own", () => {
  for (const [label, body] of [
    ["repeat field", { repeat: 4 }],
    ["--r in the prompt", { suffix: " --r 4" }],
  ] as const) {
    it(`${label}: data lists 4 tasks in the upstream's order, each charged, tracked and settled`, async () => {
      const t = await tenantWithKey(5_000_000);
      const prompt = `many ${uid()}${"suffix" in body ? body.suffix : ""}`;
      const res = await submit(t.key, "imagine", {
        prompt,
        speed: "fast",
        ...("repeat" in body ? { repeat: body.repeat } : {}),
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const ids: string[] = res.body.data.map((d: { task_id: string }) => d.task_id);
      expect(ids).toHaveLength(4);
      expect(new Set(ids).size).toBe(4);
      expect(res.body.data.every((d: { status: string }) => d.status === "submitted")).toBe(true);
      const charges = await rows<{ task_id: string; amount: number }>(
        "SELECT task_id, amount FROM ledger WHERE tenant_id = ?1 AND kind = 'charge' ORDER BY id",
        t.tenantId,
      );
      expect(charges.map((c) => c.task_id).sort()).toEqual([...ids].sort());
      expect(charges.every((c) => c.amount === -PRICE_IMAGINE.fast)).toBe(true);
      const tenant = await row<{ inflight: number }>(
        "SELECT inflight FROM tenants WHERE id = ?1",
        t.tenantId,
      );
      expect(tenant!.inflight).toBe(4);
      // Each of our tasks is one upstream job, in the upstream's order.
      for (const id of ids) expect((await finish(id, t.key)).status).toBe("SUCCESS");
      const upstreamIds = await Promise.all(ids.map(async (id) => (await upstreamTaskOf(id))!.id));
      expect(new Set(upstreamIds).size).toBe(4);
      const simOrder = ((await simTasks()) as Array<{ id: string }>)
        .map((s) => s.id)
        .filter((id) => upstreamIds.includes(id));
      expect(simOrder).toEqual(upstreamIds);
      const after = await row<{ inflight: number; balance: number }>(
        "SELECT inflight, balance FROM tenants WHERE id = ?1",
        t.tenantId,
      );
      expect(after).toEqual({ inflight: 0, balance: 5_000_000 - 4 * PRICE_IMAGINE.fast });
      const report = await reconciliation();
      expect(report.breaches.filter((b: { tenant_id?: string }) => b.tenant_id === t.tenantId)).toEqual([]);
    });
  }

  it("a balance that covers fewer than N jobs: all or nothing (402, nothing written)", async () => {
    const t = await tenantWithKey(3 * PRICE_IMAGINE.fast);
    const before = await snapshot();
    const res = await submit(t.key, "imagine", { prompt: `four ${uid()}`, speed: "fast", repeat: 4 });
    expect(res.status).toBe(402);
    expect(res.body.error.code).toBe("insufficient_balance");
    expect(await snapshot()).toEqual(before);
  });

  it("concurrent repeat submits never overspend: 6 × repeat 4 against a balance for 10 jobs → exactly 2 pass", async () => {
    const t = await tenantWithKey(10 * PRICE_IMAGINE.fast, { rpm_limit: 1000, max_inflight: 100 });
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        submit(t.key, "imagine", { prompt: `race ${i} ${uid()}`, speed: "fast", repeat: 4 }),
      ),
    );
    const ok = results.filter((r) => r.status === 200);
    expect(ok).toHaveLength(2);
    expect(results.filter((r) => r.status === 402)).toHaveLength(4);
    const tenant = await row<{ balance: number; inflight: number }>(
      "SELECT balance, inflight FROM tenants WHERE id = ?1",
      t.tenantId,
    );
    expect(tenant).toEqual({ balance: 2 * PRICE_IMAGINE.fast, inflight: 8 });
    for (const r of ok) for (const d of r.body.data) await finish(d.task_id, t.key);
  });
});

describe("limits before money", () => {
  it("metadata too large or too deep is a 400 naming metadata, with nothing written", async () => {
    const t = await tenantWithKey(5_000_000);
    const before = await snapshot();
    let deep: Record<string, unknown> = { x: 1 };
    for (let i = 0; i < 6; i++) deep = { d: deep };
    for (const metadata of [{ blob: "x".repeat(2_500_000) }, { blob: "x".repeat(17 * 1024) }, deep]) {
      const res = await submit(t.key, "imagine", { prompt: `meta ${uid()}`, metadata });
      expect(res.status).toBe(400);
      expect(res.body.error.field).toBe("metadata");
    }
    expect(await snapshot()).toEqual(before);
  });

  it("a body over the limit is a 413 naming the body, with nothing written", async () => {
    const t = await tenantWithKey(5_000_000);
    const before = await snapshot();
    const response = await call("POST", "/v1/midjourney/generations/imagine", {
      key: t.key,
      body: JSON.stringify({ prompt: "x", metadata: { pad: "x".repeat(73 * 1024 * 1024) } }),
    });
    expect(response.status).toBe(413);
    expect(response.body.error).toMatchObject({ code: "payload_too_large", field: "body" });
    expect(await snapshot()).toEqual(before);
  });

  it("four large base64 images (the upstream's own kind of limit) go through end to end and are stored once, small", async () => {
    const t = await tenantWithKey(5_000_000);
    const image = `data:image/png;base64,${"A".repeat(16 * 1024 * 1024)}`; // 12 MiB decoded each
    const res = await submit(t.key, "edits", {
      prompt: `big inputs ${uid()}`,
      image_urls: [image, image, image, image],
    });
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(200);
    const taskId = res.body.data[0].task_id;
    expect((await finish(taskId, t.key)).status).toBe("SUCCESS");
    // The task's storage row holds none of the image bytes.
    const stored = await runInDurableObject(taskStub(taskId), (_o, state) =>
      state.storage.sql.exec<{ n: number }>("SELECT length(body) AS n FROM record").one(),
    );
    expect(stored.n).toBeLessThan(64 * 1024);
  });
});

describe("admission reads what it enforces from D1", () => {
  const admission = (t: { tenantId: string; keyId: string }) => ({
    tenantId: t.tenantId,
    keyId: t.keyId,
    taskId: newTaskId(),
    action: "imagine",
    parentTaskId: null,
    costMicros: 1_000,
    kind: "new_task" as const,
    idempotency: null,
    at: Date.now(),
  });

  it("a key disabled or a tenant suspended in D1 is refused by the batch itself, writing nothing", async () => {
    for (const change of [
      "UPDATE api_keys SET status = 'disabled' WHERE id = ?1",
      "UPDATE api_keys SET status = 'revoked' WHERE id = ?1",
      "UPDATE api_keys SET expires_at = 1 WHERE id = ?1",
      "UPDATE tenants SET status = 'suspended' WHERE id = (SELECT tenant_id FROM api_keys WHERE id = ?1)",
    ]) {
      const t = await tenantWithKey(1_000_000);
      await env.DB.prepare(change).bind(t.keyId).run();
      const before = await snapshot();
      expect(await admit(env.DB, admission(t))).toEqual({ ok: false, refusal: "key_usable" });
      expect(await snapshot()).toEqual(before);
    }
  });

  it("a /modal by a key disabled in D1 (an isolate's cache may still hold it) is refused by its admission, charging nothing", async () => {
    const t = await tenantWithKey(5_000_000);
    const { upscaled } = await upscaledParent(t);
    const inpaint = (await submit(t.key, "inpaint", { task_id: upscaled })).body.data[0].task_id;
    await env.DB.prepare("UPDATE api_keys SET status = 'disabled' WHERE id = ?1").bind(t.keyId).run();
    const before = await snapshot();
    const outcome = await taskStub(inpaint).modal({
      tenantId: t.tenantId,
      keyId: t.keyId,
      body: { prompt: "sky" },
      admission: {
        tenantId: t.tenantId,
        keyId: t.keyId,
        action: "modal",
        costMicros: 66_048,
        idempotency: null,
        at: Date.now(),
      },
      requestId: "req_test",
    });
    expect(outcome).toMatchObject({ ok: false, error: { status: 403, code: "key_disabled" } });
    expect(await snapshot()).toEqual(before);
  });

  it("a lowered rate limit or spend cap takes effect on the next admission (read in the batch, never from a cache)", async () => {
    const t = await tenantWithKey(1_000_000);
    await admit(env.DB, admission(t));
    await env.DB.prepare("UPDATE api_keys SET rpm_limit = 1 WHERE id = ?1").bind(t.keyId).run();
    expect(await admit(env.DB, admission(t))).toEqual({ ok: false, refusal: "rate_limit" });
    const u = await tenantWithKey(1_000_000);
    await env.DB.prepare("UPDATE api_keys SET daily_cap = 1500 WHERE id = ?1").bind(u.keyId).run();
    await admit(env.DB, admission(u));
    expect(await admit(env.DB, admission(u))).toEqual({ ok: false, refusal: "key_budget" });
  });
});
