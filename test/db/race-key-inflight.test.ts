/**
 * Hundreds of simultaneous submits against limits that admit exactly N of them.
 * D1 serialises the admission batches; named CHECK constraints refuse the rest.
 */
import { afterAll, describe, expect, it } from "vitest";
import { call, tenantWithKey, untilAllTasksSettle } from "../helpers";
import { countBy, holdSlot, keyRow, rows, tenantRow, upscaledParent } from "./money-helpers";

// The admitted tasks poll by real alarms: let them finish before the runtime is torn down.
afterAll(() => untilAllTasksSettle(), 60_000);

const PARENT_COST = 54_048 + 66_048;

describe("in-flight caps under concurrency", () => {
  it("key max_inflight 25: exactly 25 of 150 simultaneous submits are admitted", async () => {
    const CAP = 25;
    const t = await tenantWithKey(PARENT_COST, { max_inflight: CAP });
    const { upscaled } = await upscaledParent(t);
    expect((await keyRow(t.keyId)).inflight).toBe(0);
    const results = await Promise.all(Array.from({ length: 150 }, () => holdSlot(t.key, upscaled)));
    expect(countBy(results, (r) => r.status)).toEqual({ 200: CAP, 429: 150 - CAP });
    for (const r of results.filter((r) => r.status === 429)) expect(r.body.error.code).toBe("too_many_tasks");
    expect(await keyRow(t.keyId)).toEqual({ inflight: CAP, max_inflight: CAP });
    expect((await tenantRow(t.tenantId)).inflight).toBe(CAP);
    const open = await rows("SELECT id FROM tasks WHERE key_id = ?1 AND settled_at IS NULL", t.keyId);
    expect(open).toHaveLength(CAP);
  }, 120_000);
});

describe("after the races", () => {
  it("the books reconcile", async () => {
    const report = await call("GET", "/admin/reconciliation", { admin: true });
    expect(report.body.breaches).toEqual([]);
    expect(report.body.ok).toBe(true);
  });
});
