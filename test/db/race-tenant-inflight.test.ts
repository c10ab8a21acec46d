/**
 * Hundreds of simultaneous submits against limits that admit exactly N of them.
 * D1 serialises the admission batches; named CHECK constraints refuse the rest.
 */
import { afterAll, describe, expect, it } from "vitest";
import { call, tenantWithKey, untilAllTasksSettle } from "../helpers";
import { admin, countBy, holdSlot, keyRow, ledgerSum, tenantRow, upscaledParent } from "./money-helpers";

// The admitted tasks poll by real alarms: let them finish before the runtime is torn down.
afterAll(() => untilAllTasksSettle(), 60_000);

const PARENT_COST = 54_048 + 66_048;

describe("in-flight caps under concurrency", () => {
  it("tenant max_inflight 30 over two keys: exactly 30 of 160 simultaneous submits are admitted", async () => {
    const CAP = 30;
    const t = await tenantWithKey(PARENT_COST, {}, { max_inflight: CAP });
    const second = await admin("POST", `/admin/tenants/${t.tenantId}/keys`, { name: "second" });
    const { upscaled } = await upscaledParent(t);
    const results = await Promise.all(
      Array.from({ length: 160 }, (_, i) => holdSlot(i % 2 ? t.key : second.body.key, upscaled)),
    );
    expect(countBy(results, (r) => r.status)).toEqual({ 200: CAP, 429: 160 - CAP });
    const tenant = await tenantRow(t.tenantId);
    expect(tenant.inflight).toBe(CAP);
    const a = await keyRow(t.keyId);
    const b = await keyRow(second.body.id);
    expect(a.inflight + b.inflight).toBe(CAP);
    // Only the admitted tasks hold money rows: the parents' two charges and nothing else.
    expect(await ledgerSum(t.tenantId)).toBe(0);
    expect(tenant.balance).toBe(0);
  }, 120_000);
});

describe("after the races", () => {
  it("the books reconcile", async () => {
    const report = await call("GET", "/admin/reconciliation", { admin: true });
    expect(report.body.breaches).toEqual([]);
    expect(report.body.ok).toBe(true);
  });
});
