/**
 * Hosted results' usage (issue 14): storage priced per GB-month is charged daily, exactly
 * (a carried remainder, nothing rounded away), once per tenant and day however often the
 * cron runs, never below a zero balance (owed, then charged), and never for a free tenant;
 * the ledger still sums to the balance. Bytes served are counted per tenant and day.
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { recordAssetFile } from "../../src/db/assets";
import { BYTE_DAYS_PER_GB_MONTH, storageDayCharge } from "../../src/domain/storage-pricing";
import { chargeStorage, flushServedBytes } from "../../src/services/asset-usage";
import { balanceOf, call, driveToEnd, ledgerOf, reconciliation, submit, tenantWithKey } from "../helpers";

const DAY = 86_400_000;
/** Noon of a fixed UTC day; the cron at `at(n)` charges day n-1. */
const at = (n: number) => Date.UTC(2031, 0, 1, 12) + n * DAY;

async function storingTenant(bytes: number, price: number, balance = 1_000_000_000) {
  const t = await tenantWithKey(balance, {}, { storage_price_micros_per_gb_month: price });
  await recordAssetFile(env.DB, {
    objectKey: `t/${t.tenantId}/task_x/${crypto.randomUUID()}.png`,
    tenantId: t.tenantId,
    taskId: "task_x",
    bytes,
    storedAt: at(0),
  });
  return t;
}

const storageRows = async (tenantId: string) =>
  (await ledgerOf(tenantId)).filter((row: { kind: string }) => row.kind === "storage");

describe("the daily storage charge", () => {
  it("charges the exact total over several days: whole micro-USD, the remainder carried", async () => {
    // 1.234567891 GB at 1.000003 USD per GB-month: 41,152.39… micro-USD a day.
    const bytes = 1_234_567_891;
    const price = 1_000_003;
    const t = await storingTenant(bytes, price);
    const start = await balanceOf(t.tenantId);
    for (let n = 1; n <= 6; n++) {
      await chargeStorage(env.DB, at(n));
      const exactSoFar = (BigInt(n) * BigInt(bytes) * BigInt(price)) / BYTE_DAYS_PER_GB_MONTH;
      expect(start - (await balanceOf(t.tenantId)), `day ${n}`).toBe(Number(exactSoFar));
    }
    const rows = await storageRows(t.tenantId);
    expect(rows).toHaveLength(6);
    // Rounding each day down on its own would lose 0.39 a day; the carry makes some days one more.
    expect(new Set(rows.map((r: { amount: number }) => -r.amount))).toEqual(new Set([41_152, 41_153]));
    expect(rows.map((r: { step: string }) => r.step)).toEqual([
      "2031-01-01",
      "2031-01-02",
      "2031-01-03",
      "2031-01-04",
      "2031-01-05",
      "2031-01-06",
    ]);
  });

  it("a second cron run of the same day, or two at once, charge nothing more", async () => {
    const t = await storingTenant(3_000_000_000, 1_000_000);
    await chargeStorage(env.DB, at(1));
    await chargeStorage(env.DB, at(1) + 5 * 60_000);
    await Promise.all([chargeStorage(env.DB, at(2)), chargeStorage(env.DB, at(2))]);
    const rows = await storageRows(t.tenantId);
    expect(rows.map((r: { amount: number }) => r.amount)).toEqual([-100_000, -100_000]);
  });

  it("a free tenant (the default) gets no storage rows", async () => {
    const t = await tenantWithKey(1_000_000);
    await recordAssetFile(env.DB, {
      objectKey: `t/${t.tenantId}/task_y/free.png`,
      tenantId: t.tenantId,
      taskId: "task_y",
      bytes: 5_000_000_000,
      storedAt: at(0),
    });
    await chargeStorage(env.DB, at(1));
    expect(await storageRows(t.tenantId)).toEqual([]);
    const days = await env.DB.prepare("SELECT COUNT(*) AS n FROM asset_storage_days WHERE tenant_id = ?1")
      .bind(t.tenantId)
      .first<{ n: number }>();
    expect(days!.n).toBe(0);
  });

  it("a balance that cannot cover the day stays at zero or above; the charge is owed and taken later", async () => {
    // 100,000 micro-USD a day against a balance of 150,000.
    const t = await storingTenant(3_000_000_000, 1_000_000, 150_000);
    await chargeStorage(env.DB, at(1));
    expect(await balanceOf(t.tenantId)).toBe(50_000);
    await chargeStorage(env.DB, at(2));
    expect(await balanceOf(t.tenantId)).toBe(50_000);
    const owed = await call(
      "GET",
      `/admin/assets/usage?tenant_id=${t.tenantId}&from=2031-01-01&to=2031-01-31`,
      {
        admin: true,
      },
    );
    expect(owed.body.data[0]).toMatchObject({
      storage_charged_micros: 100_000,
      storage_owed_micros: 100_000,
    });
    await call("POST", `/admin/tenants/${t.tenantId}/topups`, {
      admin: true,
      body: { amount_micros: 1_000_000, reason: "more" },
    });
    await chargeStorage(env.DB, at(3));
    // Day 3 takes its own day and the one owed: nothing lost, nothing twice.
    expect(await balanceOf(t.tenantId)).toBe(1_050_000 - 200_000);
    const rows = await storageRows(t.tenantId);
    expect(rows.map((r: { amount: number }) => r.amount)).toEqual([-100_000, -200_000]);
  });

  it("keeps the ledger summing to every balance (reconciliation stays clean)", async () => {
    await storingTenant(7_777_777_777, 23_456);
    await chargeStorage(env.DB, at(10));
    const report = await reconciliation();
    expect(report.ok, JSON.stringify(report)).toBe(true);
  });

  it("the arithmetic is exact past 2^53 (10 TB at 1,000 USD per GB-month)", () => {
    const day = storageDayCharge(10 ** 13, 10 ** 9, 1, 7);
    expect(day.dueMicros).toBe(7 + 333_333_333_333);
    expect(day.remainder).toBe(10_000_000_001);
  });
});

describe("bytes served per tenant", () => {
  it("counts what each answer carried (whole files and ranges), shown in GET /admin/assets/usage", async () => {
    const t = await tenantWithKey(50_000_000, {}, { asset_mode: "hosted" });
    const submitted = await submit(t.key, "imagine", { prompt: `served bytes ${crypto.randomUUID()}` });
    const view = await driveToEnd(submitted.body.data[0].task_id, t.key);
    const whole = await SELF.fetch(view.grid_image_url);
    const size = (await whole.arrayBuffer()).byteLength;
    const part = await SELF.fetch(view.grid_image_url, { headers: { range: "bytes=0-99" } });
    await part.arrayBuffer();
    const head = await SELF.fetch(view.grid_image_url, { method: "HEAD" });
    await head.arrayBuffer();
    await flushServedBytes(env.DB);
    const usage = await call("GET", `/admin/assets/usage?tenant_id=${t.tenantId}`, { admin: true });
    expect(usage.status).toBe(200);
    expect(usage.body.data[0]).toMatchObject({ served_bytes: size + 100, served_responses: 2 });
    expect(usage.body.data[0].bytes).toBeGreaterThan(size);
  });
});
