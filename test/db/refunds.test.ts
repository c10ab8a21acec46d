/**
 * Upstream failures at submit are refunded exactly once: balance, in-flight slots and key
 * spend come back; one refund row points at its charge; the ledger is append-only.
 */

import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { settleTask } from "../../src/db/admission";
import type { LedgerEntry } from "../../src/db/ledger-reads";
import { insertCharge, insertRefundOfStep } from "../../src/db/ledger-writes";
import { runAlarmWhenDue } from "../durable/clock-helpers";
import {
  call,
  driveUntilStepRefunded,
  submit,
  type TenantWithKey,
  taskStub,
  tenantWithKey,
} from "../helpers";
import {
  addFault,
  admittedTask,
  finish,
  keyRow,
  ledgerSum,
  row,
  rows,
  spendRows,
  taskIdOf,
  tenantRow,
  uid,
  upscaledParent,
} from "./money-helpers";

const IMAGINE_RELAX = 54_048;
const START = 5_000_000;

/** The ledger row as D1 stores it. */
type LedgerRow = LedgerEntry;

async function moneyOfTask(taskId: string) {
  return rows<LedgerRow>("SELECT * FROM ledger WHERE task_id = ?1 ORDER BY id", taskId);
}

/** Everything a refund must restore, checked in one place. */
async function expectFullyRefunded(t: TenantWithKey, taskId: string, cost: number) {
  const entries = await moneyOfTask(taskId);
  expect(entries.map((e) => e.kind)).toEqual(["charge", "refund"]);
  const [charge, refund] = entries as [LedgerRow, LedgerRow];
  expect(charge.amount).toBe(-cost);
  expect(refund.amount).toBe(cost);
  expect(refund.ref_id).toBe(charge.id);
  expect(refund).toMatchObject({
    tenant_id: t.tenantId,
    key_id: t.keyId,
    task_id: taskId,
    action: charge.action,
  });
  expect(refund.balance_after).toBe(charge.balance_after + cost);

  expect(await tenantRow(t.tenantId)).toMatchObject({ balance: START, inflight: 0 });
  expect((await keyRow(t.keyId)).inflight).toBe(0);
  expect(await ledgerSum(t.tenantId)).toBe(START);
  const spend = await spendRows(t.keyId);
  expect(spend).toHaveLength(2);
  expect(spend.map((s) => s.spent)).toEqual([0, 0]);
  const task = await row<{ status: string; settled_at: number | null; cost: number }>(
    "SELECT status, settled_at, cost FROM tasks WHERE id = ?1",
    taskId,
  );
  expect(task!.status).toBe("FAILURE");
  expect(task!.settled_at).not.toBeNull();
  expect(task!.cost).toBe(cost);
}

async function failingSubmit(fault: Record<string, unknown>, body: Record<string, unknown> = {}) {
  const t = await tenantWithKey(START);
  const marker = `refund-${uid()}`;
  await addFault({ on: "submit", prompt_contains: marker, count: 1, ...fault });
  const res = await submit(t.key, "imagine", { prompt: `${marker} a fox`, ...body });
  const task = await row<{ id: string }>("SELECT id FROM tasks WHERE tenant_id = ?1", t.tenantId);
  return { t, res, taskId: task!.id };
}

describe("refunds when the upstream fails at submit", () => {
  it("5xx → 502 upstream_error, refunded exactly", async () => {
    const { t, res, taskId } = await failingSubmit({ type: "status", status: 503 });
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe("upstream_error");
    await expectFullyRefunded(t, taskId, IMAGINE_RELAX);
  });

  it("502 Service rejected → 502, refunded exactly", async () => {
    const { t, res, taskId } = await failingSubmit({ type: "status", status: 502 }, { speed: "turbo" });
    expect(res.status).toBe(502);
    await expectFullyRefunded(t, taskId, 120_000);
  });

  it("429 → 429 upstream_rate_limited with Retry-After, refunded exactly", async () => {
    const { t, res, taskId } = await failingSubmit({ type: "status", status: 429, retry_after: 7 });
    expect(res.status).toBe(429);
    expect(res.body.error.code).toBe("upstream_rate_limited");
    expect(res.headers.get("Retry-After")).toBe("7");
    await expectFullyRefunded(t, taskId, IMAGINE_RELAX);
  });

  it("a hung upstream → 504 upstream_timeout after UPSTREAM_TIMEOUT_MS, refunded exactly", async () => {
    const started = Date.now();
    const { t, res, taskId } = await failingSubmit({ type: "hang", delay_ms: 4_000 }, { speed: "fast" });
    expect(res.status).toBe(504);
    expect(res.body.error.code).toBe("upstream_timeout");
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
    await expectFullyRefunded(t, taskId, 66_048);
  });

  it("a garbage 200 body → 502 upstream_bad_response, refunded exactly", async () => {
    const { t, res, taskId } = await failingSubmit({ type: "garbage" });
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe("upstream_bad_response");
    await expectFullyRefunded(t, taskId, IMAGINE_RELAX);
  });

  it("an HTML proxy error page → 502, refunded exactly", async () => {
    const { t, res, taskId } = await failingSubmit({ type: "html" });
    expect(res.status).toBe(502);
    await expectFullyRefunded(t, taskId, IMAGINE_RELAX);
  });

  it("a truncated answer → 502 upstream_bad_response, refunded exactly", async () => {
    const { t, res, taskId } = await failingSubmit({ type: "truncated", process: false });
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe("upstream_bad_response");
    await expectFullyRefunded(t, taskId, IMAGINE_RELAX);
  });

  it("an upstream 4xx rejection → 4xx with its message, refunded exactly", async () => {
    const { t, res, taskId } = await failingSubmit({ type: "status", status: 400 });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("upstream_rejected");
    await expectFullyRefunded(t, taskId, IMAGINE_RELAX);
  });

  it("a video batch is refunded in full (unit price × batch_size)", async () => {
    const t = await tenantWithKey(START);
    const marker = `refund-video-${uid()}`;
    await addFault({ type: "status", status: 500, on: "submit", prompt_contains: marker });
    const res = await submit(t.key, "video", {
      image_urls: ["https://example.com/first.png"],
      prompt: marker,
      video_type: "vid_1.1_i2v_720",
      batch_size: 4,
    });
    expect(res.status).toBe(502);
    const task = await row<{ id: string }>("SELECT id FROM tasks WHERE tenant_id = ?1", t.tenantId);
    await expectFullyRefunded(t, task!.id, 4 * 480_000);
  });

  it("the spend given back makes room under a daily cap again", async () => {
    const t = await tenantWithKey(START, { daily_cap_micros: IMAGINE_RELAX });
    const marker = `refund-cap-${uid()}`;
    await addFault({ type: "status", status: 503, on: "submit", prompt_contains: marker });
    expect((await submit(t.key, "imagine", { prompt: marker })).status).toBe(502);
    const ok = await submit(t.key, "imagine", { prompt: `after refund ${uid()}` });
    const taskId = taskIdOf(ok);
    await finish(taskId, t.key);
    expect((await spendRows(t.keyId)).find((s) => s.period.startsWith("d"))!.spent).toBe(IMAGINE_RELAX);
    expect((await tenantRow(t.tenantId)).balance).toBe(START - IMAGINE_RELAX);
  });

  it("a task that FAILs upstream later is refunded once; a SUCCESS keeps its charge", async () => {
    const t = await tenantWithKey(START);
    const marker = `refund-late-${uid()}`;
    await addFault({ type: "fail_task", prompt_contains: `${marker} fails`, reason: "banned prompt" });
    const failing = taskIdOf(await submit(t.key, "imagine", { prompt: `${marker} fails` }));
    const ok = taskIdOf(await submit(t.key, "imagine", { prompt: `${marker} works` }));
    expect(await tenantRow(t.tenantId)).toMatchObject({ balance: START - 2 * IMAGINE_RELAX, inflight: 2 });
    const failedView = await finish(failing, t.key);
    expect(failedView.status).toBe("FAILURE");
    expect((await finish(ok, t.key)).status).toBe("SUCCESS");
    expect((await moneyOfTask(ok)).map((e) => e.kind)).toEqual(["charge"]);
    const failedMoney = await moneyOfTask(failing);
    expect(failedMoney.map((e) => [e.kind, e.amount])).toEqual([
      ["charge", -IMAGINE_RELAX],
      ["refund", IMAGINE_RELAX],
    ]);
    expect(failedMoney[1]!.ref_id).toBe(failedMoney[0]!.id);
    expect(await tenantRow(t.tenantId)).toMatchObject({ balance: START - IMAGINE_RELAX, inflight: 0 });
    expect((await keyRow(t.keyId)).inflight).toBe(0);
    expect((await spendRows(t.keyId)).map((s) => s.spent)).toEqual([IMAGINE_RELAX, IMAGINE_RELAX]);
    // More alarms (at least once delivery) change nothing.
    for (let i = 0; i < 3; i++) await runAlarmWhenDue(taskStub(failing));
    expect((await moneyOfTask(failing)).map((e) => e.kind)).toEqual(["charge", "refund"]);
    expect(await tenantRow(t.tenantId)).toMatchObject({ balance: START - IMAGINE_RELAX, inflight: 0 });
  });
});

describe("a refund cannot be written twice", () => {
  const failure = (taskId: string) => ({
    taskId,
    status: "FAILURE" as const,
    refund: true,
    reason: "upstream_failure",
    failReason: "test",
    upstreamTaskId: null,
    at: Date.now(),
  });

  it("settleTask twice: the second call returns false and changes nothing", async () => {
    const t = await tenantWithKey(START);
    const taskId = await admittedTask(t, IMAGINE_RELAX);
    expect(await tenantRow(t.tenantId)).toMatchObject({ balance: START - IMAGINE_RELAX, inflight: 1 });
    expect(await settleTask(env.DB, failure(taskId))).toBe(true);
    await expectFullyRefunded(t, taskId, IMAGINE_RELAX);
    expect(await settleTask(env.DB, failure(taskId))).toBe(false);
    expect(await settleTask(env.DB, { ...failure(taskId), status: "SUCCESS", refund: false })).toBe(false);
    await expectFullyRefunded(t, taskId, IMAGINE_RELAX);
  });

  it("settleTask on a task refunded through the HTTP path returns false", async () => {
    const { t, taskId } = await failingSubmit({ type: "status", status: 503 });
    expect(await settleTask(env.DB, failure(taskId))).toBe(false);
    await expectFullyRefunded(t, taskId, IMAGINE_RELAX);
  });

  it("ten concurrent settlements: exactly one wins", async () => {
    const t = await tenantWithKey(START);
    const taskId = await admittedTask(t, IMAGINE_RELAX);
    const results = await Promise.all(Array.from({ length: 10 }, () => settleTask(env.DB, failure(taskId))));
    expect(results.filter(Boolean)).toHaveLength(1);
    await expectFullyRefunded(t, taskId, IMAGINE_RELAX);
  });

  it("a SUCCESS settlement keeps the charge and frees the slots", async () => {
    const t = await tenantWithKey(START);
    const taskId = await admittedTask(t, IMAGINE_RELAX);
    expect(await settleTask(env.DB, { ...failure(taskId), status: "SUCCESS", refund: false })).toBe(true);
    expect((await moneyOfTask(taskId)).map((e) => e.kind)).toEqual(["charge"]);
    expect(await tenantRow(t.tenantId)).toMatchObject({ balance: START - IMAGINE_RELAX, inflight: 0 });
    expect((await keyRow(t.keyId)).inflight).toBe(0);
    expect((await spendRows(t.keyId)).map((s) => s.spent)).toEqual([IMAGINE_RELAX, IMAGINE_RELAX]);
    // A later FAILURE settlement of the same task cannot refund it.
    expect(await settleTask(env.DB, failure(taskId))).toBe(false);
    expect((await moneyOfTask(taskId)).map((e) => e.kind)).toEqual(["charge"]);
  });

  it("the UNIQUE index rejects a second refund even when the settled guard is bypassed", async () => {
    const t = await tenantWithKey(START);
    const taskId = await admittedTask(t, IMAGINE_RELAX);
    expect(await settleTask(env.DB, failure(taskId))).toBe(true);
    // With the task settled, the statement's own guard inserts nothing.
    const guarded = await insertRefundOfStep(env.DB, taskId, "submit", "again", Date.now()).run();
    expect(guarded.meta.changes).toBe(0);
    // Reopen the task (tasks is not append-only) so only the index stands in the way.
    await env.DB.prepare("UPDATE tasks SET settled_at = NULL WHERE id = ?1").bind(taskId).run();
    // The statement's guard sees the refund row itself, so nothing is written even when reopened …
    expect((await insertRefundOfStep(env.DB, taskId, "submit", "again", Date.now()).run()).meta.changes).toBe(
      0,
    );
    await expect(
      env.DB.prepare(
        `INSERT INTO ledger (tenant_id, key_id, task_id, kind, action, amount, balance_after, ref_id, step, created_at)
         SELECT ?1, ?2, ?3, 'refund', 'imagine', 1, 0, id, 'submit', 0 FROM ledger WHERE task_id = ?3 AND kind = 'charge'`,
      )
        .bind(t.tenantId, t.keyId, taskId)
        .run(),
    ).rejects.toThrow(/refund_exists|UNIQUE constraint failed: ledger\.ref_id/);
    await env.DB.prepare("UPDATE tasks SET settled_at = ?2 WHERE id = ?1").bind(taskId, Date.now()).run();
    expect((await moneyOfTask(taskId)).map((e) => e.kind)).toEqual(["charge", "refund"]);
    await expectFullyRefunded(t, taskId, IMAGINE_RELAX);
  });

  it("the UNIQUE index rejects a second charge of the same task", async () => {
    const t = await tenantWithKey(START);
    const taskId = await admittedTask(t, IMAGINE_RELAX);
    await expect(
      insertCharge(env.DB, {
        tenantId: t.tenantId,
        keyId: t.keyId,
        taskId,
        action: "imagine",
        amountMicros: 1,
        step: "submit",
        reason: "twice",
        at: Date.now(),
      }).run(),
    ).rejects.toThrow(/charge_step_exists|UNIQUE constraint failed: ledger\.task_id, ledger\.step/);
    expect(await settleTask(env.DB, failure(taskId))).toBe(true);
  });
});

describe("the ledger is append-only", () => {
  it("UPDATE and DELETE of ledger rows are refused by triggers", async () => {
    const t = await tenantWithKey(START);
    const [topup] = await rows<LedgerRow>("SELECT * FROM ledger WHERE tenant_id = ?1", t.tenantId);
    for (const sql of [
      "UPDATE ledger SET amount = amount + 1 WHERE id = ?1",
      "UPDATE ledger SET reason = 'edited' WHERE id = ?1",
      "UPDATE ledger SET id = id WHERE id = ?1",
      "DELETE FROM ledger WHERE id = ?1",
    ]) {
      await expect(env.DB.prepare(sql).bind(topup!.id).run(), sql).rejects.toThrow(/ledger_append_only/);
    }
    await expect(env.DB.prepare("DELETE FROM ledger").run()).rejects.toThrow(/ledger_append_only/);
    expect(await rows<LedgerRow>("SELECT * FROM ledger WHERE tenant_id = ?1", t.tenantId)).toEqual([topup]);
  });

  it("INSERT OR REPLACE and upserts cannot rewrite a ledger row either", async () => {
    const t = await tenantWithKey(START);
    const [topup] = await rows<LedgerRow>("SELECT * FROM ledger WHERE tenant_id = ?1", t.tenantId);
    // REPLACE deletes the row it collides with without firing DELETE triggers.
    await expect(
      env.DB.prepare(
        `INSERT OR REPLACE INTO ledger (id, tenant_id, kind, amount, balance_after, reason, created_at)
         VALUES (?1, ?2, 'topup', 1, 1, 'rewritten', 0)`,
      )
        .bind(topup!.id, t.tenantId)
        .run(),
    ).rejects.toThrow(/ledger_append_only/);
    await expect(
      env.DB.prepare(
        `INSERT INTO ledger (id, tenant_id, kind, amount, balance_after, created_at) VALUES (?1, ?2, 'topup', 1, 1, 0)
         ON CONFLICT (id) DO UPDATE SET amount = excluded.amount`,
      )
        .bind(topup!.id, t.tenantId)
        .run(),
    ).rejects.toThrow(/ledger_append_only/);
    expect(await rows<LedgerRow>("SELECT * FROM ledger WHERE tenant_id = ?1", t.tenantId)).toEqual([topup]);

    // Nor can a charge be replaced through its (task_id, step) uniqueness, or slip in without a step.
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: `replace ${uid()}` }));
    const before = await moneyOfTask(taskId);
    await expect(
      env.DB.prepare(
        `INSERT OR REPLACE INTO ledger (tenant_id, key_id, task_id, kind, action, amount, balance_after, step, created_at)
         VALUES (?1, ?2, ?3, 'charge', 'imagine', -1, 0, 'submit', 0)`,
      )
        .bind(t.tenantId, t.keyId, taskId)
        .run(),
    ).rejects.toThrow(/charge_step_exists/);
    await expect(
      env.DB.prepare(
        `INSERT INTO ledger (tenant_id, key_id, task_id, kind, action, amount, balance_after, created_at)
         VALUES (?1, ?2, ?3, 'charge', 'imagine', -1, 0, 0)`,
      )
        .bind(t.tenantId, t.keyId, taskId)
        .run(),
    ).rejects.toThrow(/ledger_step_required/);
    expect(await moneyOfTask(taskId)).toEqual(before);
    await finish(taskId, t.key);
  });

  it("a refused UPDATE inside a batch rolls back the whole batch", async () => {
    const t = await tenantWithKey(START);
    const [topup] = await rows<LedgerRow>("SELECT * FROM ledger WHERE tenant_id = ?1", t.tenantId);
    await expect(
      env.DB.batch([
        env.DB.prepare("UPDATE tenants SET balance = balance + 1000 WHERE id = ?1").bind(t.tenantId),
        env.DB.prepare("UPDATE ledger SET amount = amount + 1000 WHERE id = ?1").bind(topup!.id),
      ]),
    ).rejects.toThrow(/ledger_append_only/);
    expect((await tenantRow(t.tenantId)).balance).toBe(START);
  });
});

describe("refunds of a modal step", () => {
  it("a /modal whose forward failed ambiguously (503) keeps its charge until polling decides, then refunds it alone", async () => {
    const t = await tenantWithKey(START);
    const { upscaled } = await upscaledParent(t);
    const inpaint = taskIdOf(await submit(t.key, "inpaint", { task_id: upscaled }));
    expect(await moneyOfTask(inpaint)).toEqual([]); // inpaint itself is free
    const marker = `modal-refund-${uid()}`;
    await addFault({ type: "status", status: 503, on: "submit", action: "modal", prompt_contains: marker });
    const res = await submit(t.key, "modal", { task_id: inpaint, prompt: `${marker} sky` });
    expect(res.status).toBe(502);
    expect(res.body.error.message).toMatch(/may still run/);
    // The upstream may have run it: nothing is refunded on a guess.
    expect((await moneyOfTask(inpaint)).map((e) => e.kind)).toEqual(["charge"]);
    await driveUntilStepRefunded(inpaint, "modal.1");
    const money = await moneyOfTask(inpaint);
    expect(money.map((e) => [e.kind, e.amount, e.action, e.step])).toEqual([
      ["charge", -66_048, "modal", "modal.1"],
      ["refund", 66_048, "modal", "modal.1"],
    ]);
    expect(money[1]!.ref_id).toBe(money[0]!.id);
    // The task still waits in MODAL and holds its slot: the tenant may /modal again.
    expect(await tenantRow(t.tenantId)).toMatchObject({ balance: START - 54_048 - 66_048, inflight: 1 });
    const again = await submit(t.key, "modal", { task_id: inpaint, prompt: "sky" });
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect((await finish(inpaint, t.key)).status).toBe("SUCCESS");
    const final = await moneyOfTask(inpaint);
    expect(final.map((e) => [e.kind, e.step])).toEqual([
      ["charge", "modal.1"],
      ["refund", "modal.1"],
      ["charge", "modal.2"],
    ]);
    expect(await tenantRow(t.tenantId)).toMatchObject({ balance: START - 54_048 - 2 * 66_048, inflight: 0 });
    expect((await keyRow(t.keyId)).inflight).toBe(0);
    const task = await row<{ status: string; cost: number; net_charge: number }>(
      "SELECT status, cost, net_charge FROM tasks WHERE id = ?1",
      inpaint,
    );
    expect(task).toEqual({ status: "SUCCESS", cost: 2 * 66_048, net_charge: 66_048 });
  });
});

describe("after all refunds", () => {
  it("the books reconcile", async () => {
    const report = await call("GET", "/admin/reconciliation", { admin: true });
    expect(report.body.breaches).toEqual([]);
    expect(report.body.ok).toBe(true);
  });
});
