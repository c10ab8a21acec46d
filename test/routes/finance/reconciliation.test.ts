/**
 * GET /admin/reconciliation: clean after real traffic (successes, refunds, modal,
 * top-ups, adjustments), and each planted breach is reported by its own check.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { settleTask } from "../../../src/db/admission";
import { newTaskId } from "../../../src/domain/ids";
import {
  addFault,
  admin,
  admittedTask,
  finish,
  row,
  taskIdOf,
  uid,
  upscaledParent,
} from "../../db/money-helpers";
import { call, submit, type TenantWithKey, tenantWithKey } from "../../helpers";

const CHECKS = [
  "balance_matches_ledger",
  "refund_matches_charge",
  "charged_once_per_step",
  "failed_tasks_refunded",
  "successful_tasks_not_refunded",
  "task_cost_matches_charge",
  "inflight_matches_open_tasks",
  "key_inflight_matches_open_tasks",
  "late_upstream_results",
  "upstream_cost_exceeds_charge",
  "unpriced_upstream_jobs",
  "charge_without_task_record",
  "charge_without_upstream_id",
];

async function report() {
  const res = await call("GET", "/admin/reconciliation", { admin: true });
  expect(res.status).toBe(200);
  return res.body as { ok: boolean; checked_at: string; checks: string[]; breaches: any[] };
}

const exec = (sql: string, ...params: unknown[]) =>
  env.DB.prepare(sql)
    .bind(...params)
    .run();

/** A charged, open task written by the real admission batch (no Durable Object behind it). */
const openTask = () => admittedTask(t);

async function settleKept(taskId: string) {
  const settled = await settleTask(env.DB, {
    taskId,
    status: "SUCCESS",
    refund: false,
    reason: null,
    failReason: null,
    upstreamTaskId: null,
    at: Date.now(),
  });
  expect(settled).toBe(true);
}

let t: TenantWithKey;
let success: string;
let refunded: string;
let modalTask: string;

beforeAll(async () => {
  t = await tenantWithKey(5_000_000);
  success = taskIdOf(await submit(t.key, "imagine", { prompt: `recon ok ${uid()}` }));
  expect((await finish(success, t.key)).status).toBe("SUCCESS");
  const marker = `recon-fail-${uid()}`;
  await addFault({ type: "status", status: 503, on: "submit", prompt_contains: marker });
  expect((await submit(t.key, "imagine", { prompt: marker })).status).toBe(502);
  refunded = (await row<{ id: string }>(
    "SELECT id FROM tasks WHERE tenant_id = ?1 AND status = 'FAILURE'",
    t.tenantId,
  ))!.id;
  const { upscaled } = await upscaledParent(t);
  modalTask = taskIdOf(await submit(t.key, "inpaint", { task_id: upscaled }));
  expect((await submit(t.key, "modal", { task_id: modalTask, prompt: `recon ${uid()}` })).status).toBe(200);
  expect((await finish(modalTask, t.key)).status).toBe("SUCCESS");
  await admin("POST", `/admin/tenants/${t.tenantId}/topups`, { amount_micros: 123, reason: "more" });
  await admin("POST", `/admin/tenants/${t.tenantId}/adjustments`, { amount_micros: -23, reason: "less" });
});

describe("GET /admin/reconciliation", () => {
  it("is ok after real traffic and names every check", async () => {
    const body = await report();
    expect(body.breaches).toEqual([]);
    expect(body.ok).toBe(true);
    expect([...body.checks].sort()).toEqual([...CHECKS].sort());
    expect(Math.abs(Date.parse(body.checked_at) - Date.now())).toBeLessThan(60_000);
    expect((await call("GET", "/admin/reconciliation")).status).toBe(401);
    expect((await call("GET", "/admin/reconciliation", { key: t.key })).status).toBe(401);
  });

  it("reports a balance that drifted from its ledger", async () => {
    await exec("UPDATE tenants SET balance = balance + 1 WHERE id = ?1", t.tenantId);
    const body = await report();
    expect(body.ok).toBe(false);
    expect(body.breaches).toHaveLength(1);
    expect(body.breaches[0]).toMatchObject({ check: "balance_matches_ledger", tenant_id: t.tenantId });
    const detail = JSON.parse(body.breaches[0].detail);
    expect(detail.balance - detail.ledger_sum).toBe(1);
    await exec("UPDATE tenants SET balance = balance - 1 WHERE id = ?1", t.tenantId);
    expect((await report()).ok).toBe(true);
  });

  for (const status of ["FAILURE", "CANCEL"] as const) {
    it(`reports a settled ${status} task that kept its charge`, async () => {
      const taskId = await openTask();
      // An open task is not a breach yet.
      expect((await report()).ok).toBe(true);
      // Settle it by hand, without the refund.
      await env.DB.batch([
        env.DB.prepare("UPDATE tasks SET status = ?2, settled_at = ?3 WHERE id = ?1").bind(
          taskId,
          status,
          Date.now(),
        ),
        env.DB.prepare("UPDATE tenants SET inflight = inflight - 1 WHERE id = ?1").bind(t.tenantId),
        env.DB.prepare("UPDATE api_keys SET inflight = inflight - 1 WHERE id = ?1").bind(t.keyId),
      ]);
      const body = await report();
      expect(body.breaches).toEqual([
        expect.objectContaining({ check: "failed_tasks_refunded", task_id: taskId, tenant_id: t.tenantId }),
      ]);
      await exec("UPDATE tasks SET status = 'SUCCESS' WHERE id = ?1", taskId);
      expect((await report()).ok).toBe(true);
    });
  }

  it("reports a successful task that was refunded", async () => {
    await exec("UPDATE tasks SET status = 'SUCCESS' WHERE id = ?1", refunded);
    const body = await report();
    expect(body.breaches).toEqual([
      expect.objectContaining({ check: "successful_tasks_not_refunded", task_id: refunded }),
    ]);
    await exec("UPDATE tasks SET status = 'FAILURE' WHERE id = ?1", refunded);
    expect((await report()).ok).toBe(true);
  });

  it("reports a task whose cost differs from its charge", async () => {
    // A settled task's cost cannot change (trigger), so the plant is on an open task.
    const taskId = await openTask();
    expect((await report()).ok).toBe(true);
    await exec("UPDATE tasks SET cost = cost + 1 WHERE id = ?1", taskId);
    const body = await report();
    expect(body.breaches).toEqual([
      expect.objectContaining({ check: "task_cost_matches_charge", task_id: taskId }),
    ]);
    expect(JSON.parse(body.breaches[0].detail)).toEqual({ cost: 54_049, charged: 54_048 });
    await exec("UPDATE tasks SET cost = cost - 1 WHERE id = ?1", taskId);
    await settleKept(taskId);
    expect((await report()).ok).toBe(true);
  });

  it("reports an in-flight count that does not match the open tasks", async () => {
    await exec("UPDATE tenants SET inflight = inflight + 1 WHERE id = ?1", t.tenantId);
    const body = await report();
    expect(body.breaches).toEqual([
      expect.objectContaining({ check: "inflight_matches_open_tasks", tenant_id: t.tenantId }),
    ]);
    await exec("UPDATE tenants SET inflight = inflight - 1 WHERE id = ?1", t.tenantId);
    expect((await report()).ok).toBe(true);
  });

  it("reports a key in-flight count that does not match the key's open tasks", async () => {
    await exec("UPDATE api_keys SET inflight = inflight + 1 WHERE id = ?1", t.keyId);
    const body = await report();
    expect(body.breaches).toEqual([
      expect.objectContaining({ check: "key_inflight_matches_open_tasks", tenant_id: t.tenantId }),
    ]);
    expect(JSON.parse(body.breaches[0].detail)).toEqual({ key_id: t.keyId, inflight: 1, open_tasks: 0 });
    await exec("UPDATE api_keys SET inflight = inflight - 1 WHERE id = ?1", t.keyId);
    expect((await report()).ok).toBe(true);
  });

  it("reports a late upstream result on a task we gave up on", async () => {
    await exec("UPDATE tasks SET late_upstream_status = 'SUCCESS' WHERE id = ?1", refunded);
    const body = await report();
    expect(body.breaches).toEqual([
      expect.objectContaining({ check: "late_upstream_results", task_id: refunded, tenant_id: t.tenantId }),
    ]);
    await exec("UPDATE tasks SET late_upstream_status = NULL WHERE id = ?1", refunded);
    expect((await report()).ok).toBe(true);
  });

  it("reports several breaches at once", async () => {
    await exec("UPDATE tenants SET balance = balance + 2, inflight = inflight + 1 WHERE id = ?1", t.tenantId);
    const checks = (await report()).breaches.map((b) => b.check).sort();
    expect(checks).toEqual(["balance_matches_ledger", "inflight_matches_open_tasks"]);
    await exec("UPDATE tenants SET balance = balance - 2, inflight = inflight - 1 WHERE id = ?1", t.tenantId);
    expect((await report()).ok).toBe(true);
  });

  // Ledger rows cannot be removed, so this plant is the last one.
  it("reports a refund that matches no charge", async () => {
    const orphan = newTaskId();
    await env.DB.batch([
      env.DB.prepare("UPDATE tenants SET balance = balance + 5 WHERE id = ?1").bind(t.tenantId),
      env.DB.prepare(
        `INSERT INTO ledger (tenant_id, key_id, task_id, kind, action, amount, balance_after, step, created_at)
         SELECT id, NULL, ?2, 'refund', 'imagine', 5, balance, 'submit', ?3 FROM tenants WHERE id = ?1`,
      ).bind(t.tenantId, orphan, Date.now()),
    ]);
    const body = await report();
    expect(body.breaches).toEqual([
      expect.objectContaining({ check: "refund_matches_charge", task_id: orphan, tenant_id: t.tenantId }),
    ]);
    expect(typeof body.breaches[0].ledger_id).toBe("number");
  });
});
