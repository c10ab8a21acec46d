/**
 * Every refusal of the admission batch writes nothing: the full money tables are
 * compared before and after. Real alarms run in the background, so every test leaves
 * its tasks either settled (driven to the end) or parked in MODAL (polled every 30 s,
 * which writes nothing to D1).
 */
import { describe, expect, it } from "vitest";
import { call, submit, tenantWithKey } from "../helpers";
import {
  admin,
  finish,
  freshRateWindow,
  holdSlot,
  keyRow,
  ledgerSum,
  snapshot,
  spendRows,
  taskIdOf,
  tenantRow,
  uid,
  upscaledParent,
} from "./money-helpers";

const IMAGINE_RELAX = 54_048;

async function expectRefusalWritesNothing(
  request: () => Promise<{ status: number; body: any; headers: Headers }>,
  status: number,
  code: string,
) {
  const before = await snapshot();
  const res = await request();
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body.error.code).toBe(code);
  expect(await snapshot()).toEqual(before);
  return res;
}

describe("402 insufficient_balance", () => {
  it("refuses one micro short, writes nothing, then admits at exactly the price", async () => {
    const t = await tenantWithKey(IMAGINE_RELAX - 1);
    const res = await expectRefusalWritesNothing(
      () => submit(t.key, "imagine", { prompt: `short ${uid()}` }, { "Idempotency-Key": `idem-${uid()}` }),
      402,
      "insufficient_balance",
    );
    expect(res.body.error.type).toBe("billing_error");
    expect(res.headers.get("RateLimit-Limit")).toBeNull();

    await admin("POST", `/admin/tenants/${t.tenantId}/topups`, {
      amount_micros: 1,
      reason: "the last micro",
    });
    const ok = await submit(t.key, "imagine", { prompt: `exact ${uid()}` });
    const taskId = taskIdOf(ok);
    expect((await tenantRow(t.tenantId)).balance).toBe(0);
    expect(await ledgerSum(t.tenantId)).toBe(0);
    await finish(taskId, t.key);
    expect((await tenantRow(t.tenantId)).balance).toBe(0);
  });

  it("a tenant with no balance at all is refused for every priced action", async () => {
    const t = await tenantWithKey(0);
    for (const [action, body] of [
      ["imagine", { prompt: `broke ${uid()}`, speed: "turbo" }],
      ["describe", { image_urls: ["https://example.com/a.png"] }],
      ["blend", { image_urls: ["https://example.com/a.png", "https://example.com/b.png"] }],
      ["video", { image_urls: ["https://example.com/a.png"], batch_size: 4 }],
    ] as const) {
      await expectRefusalWritesNothing(() => submit(t.key, action, body), 402, "insufficient_balance");
    }
  });

  it("a video batch is refused when the balance covers fewer videos than asked", async () => {
    const t = await tenantWithKey(3 * 240_000);
    await expectRefusalWritesNothing(
      () => submit(t.key, "video", { image_urls: ["https://example.com/a.png"], batch_size: 4 }),
      402,
      "insufficient_balance",
    );
  });
});

describe("429 rate_limited", () => {
  it("admits rpm_limit requests with RateLimit-* headers, then refuses with Retry-After and writes nothing", async () => {
    const t = await tenantWithKey(10_000_000, { rpm_limit: 2 });
    await freshRateWindow(20_000);
    const first = await submit(t.key, "imagine", { prompt: `rl1 ${uid()}` });
    const second = await submit(t.key, "imagine", { prompt: `rl2 ${uid()}` });
    for (const [res, remaining] of [
      [first, "1"],
      [second, "0"],
    ] as const) {
      expect(res.status).toBe(200);
      expect(res.headers.get("RateLimit-Limit")).toBe("2");
      expect(res.headers.get("RateLimit-Remaining")).toBe(remaining);
      const reset = Number(res.headers.get("RateLimit-Reset"));
      expect(Number.isInteger(reset)).toBe(true);
      expect(reset).toBeGreaterThanOrEqual(1);
      expect(reset).toBeLessThanOrEqual(60);
    }
    await finish(taskIdOf(first), t.key);
    await finish(taskIdOf(second), t.key);

    const refused = await expectRefusalWritesNothing(
      () => submit(t.key, "imagine", { prompt: `rl3 ${uid()}` }),
      429,
      "rate_limited",
    );
    const retryAfter = Number(refused.headers.get("Retry-After"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(refused.headers.get("RateLimit-Limit")).toBe("2");
    expect(refused.headers.get("RateLimit-Remaining")).toBe("0");
    expect(refused.headers.get("RateLimit-Reset")).toBe(String(retryAfter));
    // Two charges only; the refused request did not consume the window either.
    expect((await tenantRow(t.tenantId)).balance).toBe(10_000_000 - 2 * IMAGINE_RELAX);
  });

  it("every submit path counts, and another key of the same tenant has its own window", async () => {
    const t = await tenantWithKey(10_000_000, { rpm_limit: 1 });
    const other = await admin("POST", `/admin/tenants/${t.tenantId}/keys`, {
      name: "second",
      rpm_limit: 1,
    });
    await freshRateWindow(20_000);
    const a = taskIdOf(await submit(t.key, "describe", { image_urls: ["https://example.com/x.png"] }));
    await finish(a, t.key);
    await expectRefusalWritesNothing(
      () => call("POST", "/v1/midjourney/generations", { key: t.key, body: { prompt: `rl ${uid()}` } }),
      429,
      "rate_limited",
    );
    const b = await submit(other.body.key, "imagine", { prompt: `other key ${uid()}` });
    expect(b.status).toBe(200);
    await finish(taskIdOf(b), other.body.key);
  });
});

describe("429 too_many_tasks", () => {
  it("key max_inflight: refused while the key's slots are full, writes nothing", async () => {
    const t = await tenantWithKey(10_000_000, { max_inflight: 1 });
    const { upscaled } = await upscaledParent(t);
    const held = await holdSlot(t.key, upscaled);
    expect(held.status).toBe(200);
    expect(held.body.data[0].status).toBe("modal");
    expect((await keyRow(t.keyId)).inflight).toBe(1);

    const refused = await expectRefusalWritesNothing(
      () => submit(t.key, "imagine", { prompt: `full ${uid()}` }),
      429,
      "too_many_tasks",
    );
    expect(refused.body.error.message).toMatch(/key/);
    expect(refused.headers.get("Retry-After")).toBeTruthy();
    await expectRefusalWritesNothing(() => holdSlot(t.key, upscaled), 429, "too_many_tasks");
    // The key is full but the tenant is not: a second key is admitted.
    const second = await admin("POST", `/admin/tenants/${t.tenantId}/keys`, { name: "second" });
    const ok = await submit(second.body.key, "describe", { image_urls: ["https://example.com/y.png"] });
    await finish(taskIdOf(ok), second.body.key);
  });

  it("tenant max_inflight: refused across all keys of the tenant, writes nothing", async () => {
    const t = await tenantWithKey(10_000_000, {}, { max_inflight: 2 });
    const second = await admin("POST", `/admin/tenants/${t.tenantId}/keys`, { name: "second" });
    const { upscaled } = await upscaledParent(t);
    expect((await holdSlot(t.key, upscaled)).status).toBe(200);
    expect((await holdSlot(second.body.key, upscaled)).status).toBe(200);
    expect((await tenantRow(t.tenantId)).inflight).toBe(2);
    expect((await keyRow(t.keyId)).inflight).toBe(1);

    const refused = await expectRefusalWritesNothing(
      () => submit(second.body.key, "imagine", { prompt: `tenant full ${uid()}` }),
      429,
      "too_many_tasks",
    );
    expect(refused.body.error.message).toMatch(/tenant/);
    await expectRefusalWritesNothing(() => holdSlot(t.key, upscaled), 429, "too_many_tasks");
  });
});

describe("402 key_budget_exceeded", () => {
  it("daily cap: admits up to the cap exactly, refuses beyond it, writes nothing", async () => {
    const t = await tenantWithKey(10_000_000, { daily_cap_micros: 2 * IMAGINE_RELAX });
    for (let i = 0; i < 2; i++) {
      const id = taskIdOf(await submit(t.key, "imagine", { prompt: `daily ${i} ${uid()}` }));
      await finish(id, t.key);
    }
    const spend = await spendRows(t.keyId);
    expect(spend.find((s) => s.period.startsWith("d"))).toMatchObject({
      spent: 2 * IMAGINE_RELAX,
      cap: 2 * IMAGINE_RELAX,
    });
    const refused = await expectRefusalWritesNothing(
      () => submit(t.key, "imagine", { prompt: `daily over ${uid()}` }),
      402,
      "key_budget_exceeded",
    );
    expect(refused.body.error.type).toBe("billing_error");
    expect((await tenantRow(t.tenantId)).balance).toBe(10_000_000 - 2 * IMAGINE_RELAX);
  });

  it("daily cap smaller than one action refuses it", async () => {
    const t = await tenantWithKey(10_000_000, { daily_cap_micros: IMAGINE_RELAX - 1 });
    await expectRefusalWritesNothing(
      () => submit(t.key, "imagine", { prompt: `tiny cap ${uid()}` }),
      402,
      "key_budget_exceeded",
    );
  });

  it("monthly cap: admits up to the cap, refuses beyond it, writes nothing", async () => {
    const t = await tenantWithKey(10_000_000, { monthly_cap_micros: 100_000 });
    const id = taskIdOf(await submit(t.key, "imagine", { prompt: `monthly ${uid()}` }));
    await finish(id, t.key);
    await expectRefusalWritesNothing(
      () => submit(t.key, "imagine", { prompt: `monthly over ${uid()}` }),
      402,
      "key_budget_exceeded",
    );
    const spend = await spendRows(t.keyId);
    expect(spend.find((s) => s.period.startsWith("m"))).toMatchObject({ spent: IMAGINE_RELAX, cap: 100_000 });
    expect(spend.find((s) => s.period.startsWith("d"))).toMatchObject({ spent: IMAGINE_RELAX, cap: null });
  });

  it("a raised cap applies to the next submit", async () => {
    const t = await tenantWithKey(10_000_000, { daily_cap_micros: 1 });
    await expectRefusalWritesNothing(
      () => submit(t.key, "imagine", { prompt: `cap low ${uid()}` }),
      402,
      "key_budget_exceeded",
    );
    const patched = await admin("PATCH", `/admin/tenants/${t.tenantId}/keys/${t.keyId}`, {
      daily_cap_micros: IMAGINE_RELAX,
    });
    expect(patched.status).toBe(200);
    const id = taskIdOf(await submit(t.key, "imagine", { prompt: `cap raised ${uid()}` }));
    await finish(id, t.key);
    expect((await tenantRow(t.tenantId)).balance).toBe(10_000_000 - IMAGINE_RELAX);
  });
});

describe("after all refusals", () => {
  it("the books reconcile", async () => {
    const report = await call("GET", "/admin/reconciliation", { admin: true });
    expect(report.body.breaches).toEqual([]);
    expect(report.body.ok).toBe(true);
  });
});
