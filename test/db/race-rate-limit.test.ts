/**
 * Hundreds of simultaneous submits against limits that admit exactly N of them.
 * D1 serialises the admission batches; named CHECK constraints refuse the rest.
 */
import { afterAll, describe, expect, it } from "vitest";
import { call, submit, tenantWithKey, untilAllTasksSettle } from "../helpers";
import { countBy, freshRateWindow, rows, tenantRow, uid } from "./money-helpers";

// The admitted tasks poll by real alarms: let them finish before the runtime is torn down.
afterAll(() => untilAllTasksSettle(), 60_000);

describe("rate limit under concurrency", () => {
  it("rpm_limit 40: exactly 40 of 120 simultaneous submits are admitted within one window", async () => {
    const RPM = 40;
    const t = await tenantWithKey(10_000_000, { rpm_limit: RPM });
    await freshRateWindow(30_000);
    const tag = uid();
    const results = await Promise.all(
      Array.from({ length: 120 }, (_, i) =>
        submit(t.key, "describe", { image_urls: [`https://example.com/${tag}/${i}.png`] }),
      ),
    );
    const ok = results.filter((r) => r.status === 200);
    expect(countBy(results, (r) => r.status)[429]).toBe(120 - ok.length);
    for (const r of results.filter((r) => r.status === 429)) expect(r.body.error.code).toBe("rate_limited");
    // Admission stamps each request when it runs: on a slow machine a burst can spill into the
    // next minute. Every window admits at most RPM; the first (which saw the burst start) exactly RPM.
    const windows = await rows<{ window_start: number; count: number; lim: number }>(
      "SELECT window_start, count, lim FROM rate_windows WHERE key_id = ?1 ORDER BY window_start",
      t.keyId,
    );
    expect(windows[0]!.count).toBe(RPM);
    for (const w of windows) expect(w.count).toBeLessThanOrEqual(w.lim);
    expect(windows.reduce((n, w) => n + w.count, 0)).toBe(ok.length);
    if (windows.length === 1) {
      expect(ok).toHaveLength(RPM);
      const remaining = ok.map((r) => Number(r.headers.get("RateLimit-Remaining"))).sort((x, y) => x - y);
      expect(remaining).toEqual(Array.from({ length: RPM }, (_, k) => k));
    }
    expect((await tenantRow(t.tenantId)).balance).toBe(10_000_000 - ok.length * 66_048);
  }, 120_000);
});

describe("after the races", () => {
  it("the books reconcile", async () => {
    const report = await call("GET", "/admin/reconciliation", { admin: true });
    expect(report.body.breaches).toEqual([]);
    expect(report.body.ok).toBe(true);
  });
});
