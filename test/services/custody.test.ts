/**
 * Every charge has an owner: a charge whose task never reached its TaskObject is listed by
 * reconciliation and refunded by the sweep, once; a start that arrives after the sweep
 * cannot forward.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { settleTask } from "../../src/db/admission";
import { ORPHAN_AFTER_MS, sweepOrphanCharges } from "../../src/services/custody";
import { admittedTask } from "../db/money-helpers";
import { call, reconciliation, taskStub, tenantWithKey } from "../helpers";

const PRICE = 54_048;

const admittedWithoutObject = (t: { tenantId: string; keyId: string }, at: number) =>
  admittedTask(t, PRICE, at);

const ledgerOf = async (taskId: string) =>
  (
    await env.DB.prepare("SELECT kind, amount, reason FROM ledger WHERE task_id = ?1 ORDER BY id")
      .bind(taskId)
      .all<{ kind: string; amount: number; reason: string }>()
  ).results;

describe("orphan charges", () => {
  it("reconciliation lists a charge whose task was never recorded; the sweep refunds it once", async () => {
    const t = await tenantWithKey(1_000_000);
    const old = await admittedWithoutObject(t, Date.now() - ORPHAN_AFTER_MS - 60_000);
    const fresh = await admittedWithoutObject(t, Date.now());
    const before = await reconciliation();
    expect(before.breaches).toContainEqual(
      expect.objectContaining({ check: "charge_without_task_record", task_id: old }),
    );
    // A task within the bound is not (yet) a breach: its object may be recording it right now.
    expect(before.breaches.map((b: { task_id?: string }) => b.task_id)).not.toContain(fresh);

    expect(await sweepOrphanCharges(env, Date.now())).toBe(1);
    expect((await ledgerOf(old)).map((r) => [r.kind, r.amount, r.reason])).toEqual([
      ["charge", -PRICE, "submit"],
      ["refund", PRICE, "orphaned"],
    ]);
    // Sweeping again changes nothing.
    expect(await sweepOrphanCharges(env, Date.now())).toBe(0);
    expect(await ledgerOf(old)).toHaveLength(2);

    // A start that arrives after the sweep must not forward: the money is already back.
    const late = await taskStub(old).start(
      {
        meta: {
          taskId: old,
          tenantId: t.tenantId,
          keyId: t.keyId,
          action: "imagine",
          parentTaskId: null,
          upstreamParentId: null,
          upstreamTaskId: null,
          costMicros: PRICE,
          prompt: "late",
          metadata: null,
        },
        requestId: "req_test",
      },
      JSON.stringify({ prompt: "late" }),
    );
    expect(late.ok).toBe(false);
    expect((await taskStub(old).custody()).recorded).toBe(false);

    // Settle the fresh one so the books close.
    await settleTask(env.DB, {
      taskId: fresh,
      status: "FAILURE",
      refund: true,
      reason: "test",
      failReason: "test",
      upstreamTaskId: null,
      at: Date.now(),
    });
    const after = await reconciliation();
    expect(after.breaches).toEqual([]);
    expect((await call("GET", `/admin/tenants/${t.tenantId}`, { admin: true })).body.balance_micros).toBe(
      1_000_000,
    );
  });

  it("reconciliation flags an upstream cost above the charge and upstream jobs nobody paid for", async () => {
    const t = await tenantWithKey(1_000_000);
    const taskId = await admittedWithoutObject(t, Date.now());
    await settleTask(env.DB, {
      taskId,
      status: "SUCCESS",
      refund: false,
      reason: null,
      failReason: null,
      upstreamTaskId: "up_1",
      upstreamCostMicros: PRICE + 1,
      unpricedUpstreamJobs: 3,
      at: Date.now(),
    });
    const report = await reconciliation();
    expect(report.breaches).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ check: "upstream_cost_exceeds_charge", task_id: taskId }),
        expect.objectContaining({ check: "unpriced_upstream_jobs", task_id: taskId }),
      ]),
    );
  });
});
