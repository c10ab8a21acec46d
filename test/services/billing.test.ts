/**
 * The billing service maps every refusal of the admission batch to what the client sees,
 * and a /modal step's charge (asked by the task's object) is refused with nothing written.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { settleTask } from "../../src/db/admission";
import { admitModalStep } from "../../src/services/billing";
import { admittedTask, snapshot } from "../db/money-helpers";
import { tenantWithKey } from "../helpers";

const modalStep = (t: { tenantId: string; keyId: string }, taskId: string, costMicros = 1_000) => ({
  tenantId: t.tenantId,
  keyId: t.keyId,
  taskId,
  parentTaskId: null,
  action: "modal",
  costMicros,
  step: "modal.1",
  idempotency: null,
  at: Date.now(),
});

describe("billing: a /modal step's admission", () => {
  it("charges the step once; the same step again is modal_not_available, writing nothing", async () => {
    const t = await tenantWithKey(1_000_000);
    const taskId = await admittedTask(t, 0);
    expect(await admitModalStep(env.DB, modalStep(t, taskId))).toBeNull();
    const before = await snapshot();
    expect(await admitModalStep(env.DB, modalStep(t, taskId))).toMatchObject({
      status: 409,
      code: "modal_not_available",
      message: "this step of the task has already been charged",
    });
    expect(await snapshot()).toEqual(before);
  });

  it("maps a disabled key, a short balance and a settled task to their client errors", async () => {
    const t = await tenantWithKey(1_000_000);
    const taskId = await admittedTask(t, 0);
    expect(await admitModalStep(env.DB, modalStep(t, taskId, 2_000_000))).toMatchObject({
      status: 402,
      code: "insufficient_balance",
    });
    await settleTask(env.DB, {
      taskId,
      status: "CANCEL",
      refund: true,
      reason: "test",
      failReason: null,
      upstreamTaskId: null,
      at: Date.now(),
    });
    expect(await admitModalStep(env.DB, modalStep(t, taskId))).toMatchObject({
      status: 409,
      code: "modal_not_available",
      message: "the task has already ended; start a new inpaint",
    });
    const u = await tenantWithKey(1_000_000);
    const open = await admittedTask(u, 0);
    await env.DB.prepare("UPDATE api_keys SET status = 'disabled' WHERE id = ?1").bind(u.keyId).run();
    expect(await admitModalStep(env.DB, modalStep(u, open))).toMatchObject({
      status: 403,
      code: "key_disabled",
    });
  });
});
