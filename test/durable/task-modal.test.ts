import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { TaskObject } from "../../src/durable/task-object";
import { balanceOf, call, submit, taskStub, tenantWithKey } from "../helpers";
import {
  advanceTo,
  alarm,
  alarmNow,
  driveTask,
  expectReconciled,
  fault,
  inflightOf,
  ledgerOfTask,
  marker,
  nowOf,
  readRecord,
  rewriteRecord,
  simTask,
  submitOk,
  taskRow,
  upscaledParent,
  upstreamIdOf,
  view,
  wakeAt,
} from "./durable-helpers";

/** A fresh inpaint task of this tenant, waiting in MODAL. */
async function inpaintInModal(t: { key: string; tenantId: string; keyId: string }, label: string) {
  const parent = await upscaledParent(t as never, marker(label));
  const taskId = await submitOk(t.key, "inpaint", { task_id: parent }, "modal");
  const waiting = await view(taskId, t.key);
  expect(waiting.body.status).toBe("MODAL");
  expect(waiting.body.progress).toBe("15%");
  return taskId;
}

/** Moves the task's clock to its MODAL deadline: 30 minutes have gone by. */
async function expireModalDeadline(taskId: string) {
  await advanceTo(taskId, (await readRecord(taskId))!.state.timers.modalDeadlineAt!);
}

const modal = (key: string, body: Record<string, unknown>) => submit(key, "modal", body);

describe("inpaint → MODAL → /modal → SUBMITTED → SUCCESS", () => {
  it("continues the same task id, charges the modal price once, and keeps it on SUCCESS", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await inpaintInModal(t, "modal-ok");
    const upstreamId = await upstreamIdOf(taskId);
    // The inpaint itself is free: no charge row, but it holds an in-flight slot.
    expect(await ledgerOfTask(taskId)).toEqual([]);
    expect(await inflightOf(t)).toEqual({ tenant: 1, key: 1 });
    const balance = await balanceOf(t.tenantId);
    // Waiting in MODAL, alarms only poll (the deadline is 30 min away).
    await alarm(taskId);
    expect((await view(taskId, t.key)).body.status).toBe("MODAL");

    const res = await modal(t.key, {
      task_id: taskId,
      prompt: "a red hat",
      mask_url: "https://example.com/m.png",
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toEqual({ code: 200, data: [{ status: "submitted", task_id: taskId }] });

    const charges = (await ledgerOfTask(taskId)).filter((r) => r.kind === "charge");
    expect(charges).toHaveLength(1);
    expect(charges[0].reason).toBe("modal");
    const modalPrice = -charges[0].amount;
    expect(modalPrice).toBeGreaterThan(0);
    expect(await balanceOf(t.tenantId)).toBe(balance - modalPrice);
    // /modal continues the task: no second in-flight slot.
    expect(await inflightOf(t)).toEqual({ tenant: 1, key: 1 });

    const submitted = await view(taskId, t.key);
    expect(submitted.body.status).toBe("SUBMITTED");
    expect(submitted.body.cost).toBe(modalPrice / 1_000_000);
    expect(await upstreamIdOf(taskId)).toBe(upstreamId);

    const done = await driveTask(taskId, t.key);
    expect(done.status).toBe("SUCCESS");
    expect(done.id).toBe(taskId);
    expect(done.cost).toBe(modalPrice / 1_000_000);
    expect((await simTask(upstreamId))?.status).toBe("SUCCESS");
    expect((await ledgerOfTask(taskId)).map((r) => r.kind)).toEqual(["charge"]);
    expect(await balanceOf(t.tenantId)).toBe(balance - modalPrice);
    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
    const row = await taskRow(taskId);
    expect(row.status).toBe("SUCCESS");
    expect(row.cost).toBe(modalPrice);
    await expectReconciled();
  });

  it("a second /modal on the same task is refused and not charged", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await inpaintInModal(t, "modal-twice");
    expect((await modal(t.key, { task_id: taskId, prompt: "one" })).status).toBe(200);
    const balance = await balanceOf(t.tenantId);
    const again = await modal(t.key, { task_id: taskId, prompt: "two" });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("modal_not_available");
    expect(await balanceOf(t.tenantId)).toBe(balance);
    expect((await ledgerOfTask(taskId)).filter((r) => r.kind === "charge")).toHaveLength(1);
    expect((await driveTask(taskId, t.key)).status).toBe("SUCCESS");
    await expectReconciled();
  });

  it("a /modal the upstream clearly refuses (400): the modal step is refunded exactly once, the task keeps waiting, a later /modal works", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await inpaintInModal(t, "modal-refused");
    const m = marker("refuse-modal");
    await fault({ type: "status", status: 400, on: "submit", action: "modal", prompt_contains: m });
    const balance = await balanceOf(t.tenantId);
    const res = await modal(t.key, { task_id: taskId, prompt: `paint ${m}` });
    expect(res.status).toBe(400);
    const record = await readRecord(taskId);
    expect(record!.state.status).toBe("MODAL");
    expect(record!.state.modalPending).toBe(false);
    const rows = await ledgerOfTask(taskId);
    expect(rows.map((r) => [r.kind, r.step])).toEqual([
      ["charge", "modal.1"],
      ["refund", "modal.1"],
    ]);
    expect(rows[1].amount).toBe(-rows[0].amount);
    expect(await balanceOf(t.tenantId)).toBe(balance);
    for (let i = 0; i < 3; i++) await alarmNow(taskId);
    expect((await readRecord(taskId))!.state.status).toBe("MODAL");
    expect((await ledgerOfTask(taskId)).filter((r) => r.kind === "refund")).toHaveLength(1);
    expect(await inflightOf(t)).toEqual({ tenant: 1, key: 1 });
    // Every MODAL can be continued: a second /modal is its own charged step.
    const again = await modal(t.key, { task_id: taskId, prompt: "paint" });
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect((await driveTask(taskId, t.key)).status).toBe("SUCCESS");
    const final = await ledgerOfTask(taskId);
    expect(final.map((r) => [r.kind, r.step])).toEqual([
      ["charge", "modal.1"],
      ["refund", "modal.1"],
      ["charge", "modal.2"],
    ]);
    expect(await balanceOf(t.tenantId)).toBe(balance + final[2].amount);
    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
    await expectReconciled();
  });

  it("an operator who prices inpaint above zero: inpaint and its /modal are two charges, each settled", async () => {
    const t = await tenantWithKey(10_000_000);
    const put = await call("PUT", "/admin/prices", {
      admin: true,
      body: { prices: [{ action: "inpaint", speed: "relax", override_micros: 10_000 }] },
    });
    try {
      expect(put.status, JSON.stringify(put.body)).toBe(200);
      const taskId = await inpaintInModal(t, "priced-inpaint");
      const res = await modal(t.key, { task_id: taskId, prompt: "a hat" });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect((await driveTask(taskId, t.key)).status).toBe("SUCCESS");
      const rows = await ledgerOfTask(taskId);
      expect(rows.map((r) => [r.kind, r.step])).toEqual([
        ["charge", "submit"],
        ["charge", "modal.1"],
      ]);
      expect(rows[0].amount).toBe(-10_000);
      expect((await taskRow(taskId)).cost).toBe(10_000 - rows[1].amount);
      await expectReconciled();
    } finally {
      await call("PUT", "/admin/prices", {
        admin: true,
        body: { prices: [{ action: "inpaint", speed: "relax", override_micros: null }] },
      });
    }
  });

  it("a /modal the tenant cannot pay for is refused (402), the task keeps waiting, and a later /modal works", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await inpaintInModal(t, "modal-broke");
    // Spend the balance down to 1 micro with an adjustment.
    const balance = await balanceOf(t.tenantId);
    const adj = await call("POST", `/admin/tenants/${t.tenantId}/adjustments`, {
      admin: true,
      body: { amount_micros: -(balance - 1), reason: "test: drain" },
    });
    expect(adj.status, JSON.stringify(adj.body)).toBe(201);
    const broke = await modal(t.key, { task_id: taskId, prompt: "x" });
    expect(broke.status).toBe(402);
    expect(broke.body.error.code).toBe("insufficient_balance");
    const record = await readRecord(taskId);
    expect(record!.state.status).toBe("MODAL");
    expect(record!.state.modalPending).toBe(false);
    expect(await ledgerOfTask(taskId)).toEqual([]);

    const topup = await call("POST", `/admin/tenants/${t.tenantId}/topups`, {
      admin: true,
      body: { amount_micros: 5_000_000, reason: "test: refill" },
    });
    expect(topup.status).toBe(201);
    expect((await modal(t.key, { task_id: taskId, prompt: "x" })).status).toBe(200);
    expect((await driveTask(taskId, t.key)).status).toBe("SUCCESS");
    await expectReconciled();
  });
});

describe("MODAL timeout", () => {
  it("CANCEL after the deadline; nothing was charged so nothing is refunded; a later /modal is 409 modal_expired", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await inpaintInModal(t, "modal-timeout");
    const balance = await balanceOf(t.tenantId);
    await expireModalDeadline(taskId);
    await alarm(taskId);

    const cancelled = await view(taskId, t.key);
    expect(cancelled.body.status).toBe("CANCEL");
    expect(cancelled.body.progress).toBe("100%");
    expect(cancelled.body.fail_reason).toBeTruthy();
    const record = await readRecord(taskId);
    expect(record!.state.settlement).toMatchObject({
      outcome: "refund",
      reason: "modal_timeout",
      recorded: true,
    });
    // No charge (inpaint is free), so no refund row either.
    expect(await ledgerOfTask(taskId)).toEqual([]);
    expect(await balanceOf(t.tenantId)).toBe(balance);
    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
    const row = await taskRow(taskId);
    expect(row.status).toBe("CANCEL");
    expect(row.settled_at).not.toBeNull();

    const late = await modal(t.key, { task_id: taskId, prompt: "too late" });
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe("modal_expired");
    expect(await ledgerOfTask(taskId)).toEqual([]);
    expect(await balanceOf(t.tenantId)).toBe(balance);
    expect((await readRecord(taskId))!.state.status).toBe("CANCEL");
    await expectReconciled();
  });

  it("a /modal that arrives after the deadline but before the alarm: CANCEL at once, 409 modal_expired, no charge", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await inpaintInModal(t, "modal-late");
    const balance = await balanceOf(t.tenantId);
    await expireModalDeadline(taskId);
    const late = await modal(t.key, { task_id: taskId, prompt: "late" });
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe("modal_expired");
    expect((await view(taskId, t.key)).body.status).toBe("CANCEL");
    expect(await ledgerOfTask(taskId)).toEqual([]);
    expect(await balanceOf(t.tenantId)).toBe(balance);
    expect((await taskRow(taskId)).status).toBe("CANCEL");
    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
    await alarmNow(taskId); // a later alarm, long before retention
    expect((await view(taskId, t.key)).body.status).toBe("CANCEL");
    expect(await ledgerOfTask(taskId)).toEqual([]);
    await expectReconciled();
  });

  it("a CANCEL for a task that WAS charged refunds that charge exactly once", async () => {
    // A /modal refused by D1 leaves nothing; here the upstream cancels a task we charged.
    const t = await tenantWithKey(10_000_000);
    const taskId = await inpaintInModal(t, "modal-charged-cancel");
    expect((await modal(t.key, { task_id: taskId, prompt: "p" })).status).toBe(200);
    const balanceAfterCharge = await balanceOf(t.tenantId);
    const charge = (await ledgerOfTask(taskId))[0];
    // The upstream reports CANCEL (several times, as duplicated polls would).
    await runInDurableObject(taskStub(taskId), async (o: TaskObject) => {
      const { lifecycle } = o as unknown as { lifecycle: { observe(x: unknown): Promise<void> } };
      const observe = lifecycle.observe.bind(lifecycle);
      for (let i = 0; i < 3; i++) {
        await observe({
          type: "upstream",
          at: Date.now(),
          status: "CANCEL",
          progress: 100,
          failReason: null,
          result: {},
        });
      }
    });
    expect((await view(taskId, t.key)).body.status).toBe("CANCEL");
    const rows = await ledgerOfTask(taskId);
    expect(rows.map((r) => r.kind)).toEqual(["charge", "refund"]);
    expect(rows[1].amount).toBe(-charge.amount);
    expect(await balanceOf(t.tenantId)).toBe(balanceAfterCharge - charge.amount);
    // A /modal on an upstream-cancelled task is also reported as expired.
    const late = await modal(t.key, { task_id: taskId, prompt: "again" });
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe("modal_expired");
    await expectReconciled();
  });

  it("the deadline does not cancel a task whose /modal is being handled", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await inpaintInModal(t, "modal-pending");
    // The /modal was accepted by the machine and is being charged/forwarded…
    await rewriteRecord(taskId, (r) => {
      r.state.modalPending = true;
    });
    await expireModalDeadline(taskId);
    for (let i = 0; i < 3; i++) await alarm(taskId);
    const record = await readRecord(taskId);
    expect(record!.state.status).toBe("MODAL");
    expect(record!.state.settlement).toBeNull();
    // …and it does not make the alarm spin: the next wake-up is the next poll, not the past deadline.
    expect(await wakeAt(taskId)).toBeGreaterThan((await nowOf(taskId)) + 1_000);
  });
});

describe("concurrent /modal vs MODAL timeout", () => {
  it("a /modal in flight when the deadline passes wins: no CANCEL, charged once, SUCCESS", async () => {
    const t = await tenantWithKey(10_000_000);
    const taskId = await inpaintInModal(t, "modal-inflight");
    const m = marker("slow-modal");
    // Hold the /modal at the upstream for a while (below the gateway's 1.5 s timeout).
    await fault({ type: "slow", delay_ms: 900, on: "submit", action: "modal", prompt_contains: m });
    const pendingModal = modal(t.key, { task_id: taskId, prompt: `go ${m}` });
    let pending = false;
    for (let i = 0; i < 200 && !pending; i++) pending = (await readRecord(taskId))!.state.modalPending;
    expect(pending).toBe(true);
    // Now the 30 minutes are over, and the alarm (plus duplicates) runs while /modal is in flight.
    await expireModalDeadline(taskId);
    await Promise.all([
      alarm(taskId),
      runInDurableObject(taskStub(taskId), (o: TaskObject) =>
        o.alarm({ retryCount: 1, isRetry: true, scheduledTime: Date.now() }),
      ),
    ]);
    const during = await readRecord(taskId);
    expect(during!.state.status).toBe("MODAL");
    expect(during!.state.settlement).toBeNull();

    const res = await pendingModal;
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect((await view(taskId, t.key)).body.status).toBe("SUBMITTED");
    expect((await driveTask(taskId, t.key)).status).toBe("SUCCESS");
    expect((await ledgerOfTask(taskId)).map((r) => r.kind)).toEqual(["charge"]);
    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
    await expectReconciled();
  });

  it("exactly one of them wins, and the money matches the winner (never a refund without a charge, never two)", async () => {
    const t = await tenantWithKey(50_000_000);
    const outcomes: string[] = [];
    for (let trial = 0; trial < 6; trial++) {
      const taskId = await inpaintInModal(t, `race-${trial}`);
      // The deadline is a moment away; the alarm comes when it is due, a /modal that gets in
      // first does not see it due. Whichever runs first decides.
      const deadline = (await readRecord(taskId))!.state.timers.modalDeadlineAt!;
      await advanceTo(taskId, deadline - 300);
      const runTimeout = async () => {
        await advanceTo(taskId, deadline);
        return alarmNow(taskId);
      };
      // a duplicate runtime delivery of the same alarm (judged by the task's clock)
      const runDuplicate = () =>
        runInDurableObject(taskStub(taskId), (o: TaskObject) =>
          o.alarm({ retryCount: 1, isRetry: true, scheduledTime: Date.now() }),
        );
      const runModal = () => modal(t.key, { task_id: taskId, prompt: `race ${trial}` });
      const [res] =
        trial % 2 === 0
          ? await Promise.all([runModal(), runTimeout(), runDuplicate()])
          : await Promise.all([runTimeout(), runModal(), runDuplicate()]).then(([, m]) => [m]);
      const final = (await driveTask(taskId, t.key)).status;
      const rows = await ledgerOfTask(taskId);
      if (res!.status === 200) {
        outcomes.push("modal");
        expect(final).toBe("SUCCESS");
        expect(rows.map((r) => r.kind)).toEqual(["charge"]);
      } else {
        outcomes.push("timeout");
        expect(res!.status).toBe(409);
        expect(res!.body.error.code).toBe("modal_expired");
        expect(final).toBe("CANCEL");
        expect(rows).toEqual([]);
      }
      expect(rows.filter((r) => r.kind === "refund").length).toBeLessThanOrEqual(1);
    }
    expect(await inflightOf(t)).toEqual({ tenant: 0, key: 0 });
    await expectReconciled();
    expect(outcomes).toHaveLength(6);
    console.log(`modal vs timeout race outcomes: ${outcomes.join(", ")}`);
  });
});

describe("a /modal racing a settlement that D1 already recorded", () => {
  it("is refused with 409 and charges nothing, even if the object still shows MODAL", async () => {
    const t = await tenantWithKey();
    const taskId = await inpaintInModal(t, "settled-race");
    const before = await balanceOf(t.tenantId);
    // The CANCEL settlement commits in D1 first (as a concurrent timeout would) while the
    // object has not recorded it yet.
    const { settleTask } = await import("../../src/db/admission");
    const { env } = await import("cloudflare:test");
    expect(
      await settleTask(env.DB, {
        taskId,
        status: "CANCEL",
        refund: true,
        reason: "modal_timeout",
        failReason: "no /modal within the MODAL timeout",
        upstreamTaskId: null,
        at: Date.now(),
      }),
    ).toBe(true);
    const answer = await modal(t.key, { task_id: taskId, prompt: "a hat" });
    expect(answer.status).toBe(409);
    expect(answer.body.error.code).toBe("modal_not_available");
    expect(await balanceOf(t.tenantId)).toBe(before);
    expect(
      (await ledgerOfTask(taskId)).filter((row: { kind: string }) => row.kind === "charge"),
    ).toHaveLength(0);
    expect((await taskRow(taskId))!.cost).toBe(0);
  });
});
