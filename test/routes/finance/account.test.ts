/** Tenants see their own money: GET /v1/account and GET /v1/usage. */
import { describe, expect, it } from "vitest";
import {
  addFault,
  admin,
  finish,
  holdSlot,
  rows,
  taskIdOf,
  tenantRow,
  uid,
  upscaledParent,
} from "../../db/money-helpers";
import { call, submit, type TenantWithKey, tenantWithKey } from "../../helpers";

const account = async (key: string) => {
  const res = await call("GET", "/v1/account", { key });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
};

describe("GET /v1/account", () => {
  it("shows the tenant's balance and limits and the key's limits, caps and spend", async () => {
    const expires = "2031-01-02T03:04:05.000Z";
    const t = await tenantWithKey(
      2_000_000,
      {
        name: "billing-server",
        rpm_limit: 77,
        max_inflight: 5,
        daily_cap_micros: 1_500_000,
        monthly_cap_micros: 1_800_000,
        allowed_actions: ["imagine", "upscale", "inpaint", "modal"],
        expires_at: expires,
      },
      { max_inflight: 9, price_multiplier_bps: 12_500 },
    );
    const body = await account(t.key);
    expect(body).toEqual({
      tenant: {
        id: t.tenantId,
        name: expect.any(String),
        balance_micros: 2_000_000,
        inflight: 0,
        max_inflight: 9,
        price_multiplier_bps: 12_500,
      },
      key: {
        id: t.keyId,
        name: "billing-server",
        prefix: expect.any(String),
        rpm_limit: 77,
        inflight: 0,
        max_inflight: 5,
        allowed_actions: ["imagine", "upscale", "inpaint", "modal"],
        scopes: ["generate", "read", "stream", "webhooks", "account"],
        expires_at: expires,
        daily_cap_micros: 1_500_000,
        monthly_cap_micros: 1_800_000,
        spent_today_micros: 0,
        spent_this_month_micros: 0,
      },
    });
    expect(t.key.startsWith(body.key.prefix)).toBe(true);
  });

  it("follows charges, in-flight tasks and refunds as they happen", async () => {
    const t = await tenantWithKey(2_000_000);
    const { upscaled } = await upscaledParent(t); // 54048 + 66048, both finished
    let body = await account(t.key);
    expect(body.tenant).toMatchObject({ balance_micros: 2_000_000 - 120_096, inflight: 0 });
    expect(body.key).toMatchObject({
      inflight: 0,
      spent_today_micros: 120_096,
      spent_this_month_micros: 120_096,
    });

    expect((await holdSlot(t.key, upscaled)).status).toBe(200);
    expect((await holdSlot(t.key, upscaled)).status).toBe(200);
    body = await account(t.key);
    expect(body.tenant.inflight).toBe(2);
    expect(body.key.inflight).toBe(2);

    const marker = `account-fail-${uid()}`;
    await addFault({ type: "status", status: 503, on: "submit", prompt_contains: marker });
    expect((await submit(t.key, "imagine", { prompt: marker, speed: "turbo" })).status).toBe(502);
    body = await account(t.key);
    expect(body.tenant).toMatchObject({ balance_micros: 2_000_000 - 120_096, inflight: 2 });
    expect(body.key).toMatchObject({ spent_today_micros: 120_096, spent_this_month_micros: 120_096 });

    await admin("POST", `/admin/tenants/${t.tenantId}/topups`, { amount_micros: 4, reason: "r" });
    expect((await account(t.key)).tenant.balance_micros).toBe(2_000_000 - 120_096 + 4);
    expect((await account(t.key)).tenant.balance_micros).toBe((await tenantRow(t.tenantId)).balance);
  });

  it("spend is per key; the balance and in-flight count are the tenant's", async () => {
    const t = await tenantWithKey(2_000_000);
    const second = await admin("POST", `/admin/tenants/${t.tenantId}/keys`, { name: "second" });
    const id = taskIdOf(
      await submit(second.body.key, "describe", { image_urls: ["https://example.com/a.png"] }),
    );
    const mine = await account(t.key);
    const theirs = await account(second.body.key);
    expect(mine.key.spent_today_micros).toBe(0);
    expect(theirs.key.spent_today_micros).toBe(66_048);
    expect(theirs.key.spent_this_month_micros).toBe(66_048);
    expect(mine.tenant).toEqual(theirs.tenant);
    expect(mine.tenant.balance_micros).toBe(2_000_000 - 66_048);
    await finish(id, second.body.key);
  });

  it("needs a valid sub-key", async () => {
    expect((await call("GET", "/v1/account")).status).toBe(401);
    expect((await call("GET", "/v1/account", { admin: true })).status).toBe(401);
    expect((await call("GET", "/v1/account", { key: "sk-mjg-not-a-key" })).status).toBe(401);
    const t = await tenantWithKey(0);
    await admin("DELETE", `/admin/tenants/${t.tenantId}/keys/${t.keyId}`);
    expect((await call("GET", "/v1/account", { key: t.key })).status).toBe(401);
  });
});

describe("GET /v1/usage", () => {
  async function busyTenant(label: string) {
    const t = await tenantWithKey(3_000_000);
    const ok = taskIdOf(await submit(t.key, "imagine", { prompt: `${label} ${uid()}` }));
    const desc = taskIdOf(await submit(t.key, "describe", { image_urls: ["https://example.com/u.png"] }));
    const marker = `usage-fail-${uid()}`;
    await addFault({ type: "status", status: 503, on: "submit", prompt_contains: marker });
    expect((await submit(t.key, "imagine", { prompt: marker, speed: "fast" })).status).toBe(502);
    await finish(ok, t.key);
    await finish(desc, t.key);
    return t;
  }

  let a: TenantWithKey;
  let b: TenantWithKey;

  it("lists only the caller's ledger rows and totals", async () => {
    a = await busyTenant("usage a");
    b = await busyTenant("usage b");
    const res = await call("GET", "/v1/usage", { key: a.key });
    expect(res.status).toBe(200);
    const own = await rows<{ id: number }>(
      "SELECT id FROM ledger WHERE tenant_id = ?1 ORDER BY id",
      a.tenantId,
    );
    expect(res.body.entries.map((e: any) => e.id)).toEqual(own.map((r) => r.id));
    expect(res.body.entries.every((e: any) => e.tenant_id === a.tenantId)).toBe(true);
    expect(res.body.entries.map((e: any) => e.kind)).toEqual([
      "topup",
      "charge",
      "charge",
      "charge",
      "refund",
    ]);
    expect(res.body.next_cursor).toBeNull();
    const today = new Date().toISOString().slice(0, 10);
    expect(res.body.totals).toEqual([
      {
        day: today,
        action: "describe",
        charged_micros: 66_048,
        refunded_micros: 0,
        net_micros: 66_048,
        charged_tasks: 1,
        refunded_tasks: 0,
      },
      {
        day: today,
        action: "imagine",
        charged_micros: 54_048 + 66_048,
        refunded_micros: 66_048,
        net_micros: 54_048,
        charged_tasks: 2,
        refunded_tasks: 1,
      },
    ]);
    const resB = await call("GET", "/v1/usage", { key: b.key });
    expect(resB.body.entries.every((e: any) => e.tenant_id === b.tenantId)).toBe(true);
    expect(resB.body.entries.some((e: any) => own.some((r) => r.id === e.id))).toBe(false);
  });

  it("never groups by tenant, so no other tenant can appear", async () => {
    for (const group of ["tenant", "tenant,action", "key"]) {
      const res = await call("GET", `/v1/usage?group_by=${group}`, { key: a.key });
      expect(res.status, group).toBe(200);
      for (const total of res.body.totals) {
        expect(total).not.toHaveProperty("tenant");
        if ("key" in total) expect(total.key).toBe(a.keyId);
      }
    }
    const all = await call("GET", "/v1/usage?group_by=tenant", { key: a.key });
    expect(all.body.totals).toEqual([
      {
        charged_micros: 186_144,
        refunded_micros: 66_048,
        net_micros: 120_096,
        charged_tasks: 3,
        refunded_tasks: 1,
      },
    ]);
  });

  it("pages its entries with the cursor and filters by time", async () => {
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const res: { status: number; body: any } = await call(
        "GET",
        `/v1/usage?limit=2${cursor ? `&cursor=${cursor}` : ""}`,
        { key: a.key },
      );
      expect(res.status).toBe(200);
      seen.push(...res.body.entries.map((e: any) => e.id));
      cursor = res.body.next_cursor;
    } while (cursor);
    const own = await rows<{ id: number }>(
      "SELECT id FROM ledger WHERE tenant_id = ?1 ORDER BY id",
      a.tenantId,
    );
    expect(seen).toEqual(own.map((r) => r.id));
    const past = await call("GET", "/v1/usage?to=2020-01-01T00:00:00Z", { key: a.key });
    expect(past.body).toEqual({ totals: [], entries: [], next_cursor: null });
    expect((await call("GET", "/v1/usage?group_by=week", { key: a.key })).status).toBe(400);
    expect((await call("GET", "/v1/usage", { admin: true })).status).toBe(401);
  });

  it("the books reconcile", async () => {
    const report = await call("GET", "/admin/reconciliation", { admin: true });
    expect(report.body.breaches).toEqual([]);
  });
});
