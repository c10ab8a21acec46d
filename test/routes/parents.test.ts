/**
 * Parent rules. The gateway enforces ownership (another tenant's task is 404, as if it
 * did not exist), existence and SUCCESS (400 parent_not_ready) before charging anything;
 * the upstream enforces the shape rules (zoom/pan/inpaint need an upscaled parent, ...),
 * and its 400 is passed through with its message while the charge is refunded.
 */
import { describe, expect, it } from "vitest";
import { call, driveToEnd, submit, tenantWithKey } from "../helpers";
import {
  expectError,
  expectNothingWritten,
  expectRefunded,
  expectSubmitted,
  footprint,
  get,
  gridParent,
  ledgerOfTask,
  marker,
  taskRow,
  tenantRow,
  unitPrice,
  upscaledParent,
  upstreamIdOf,
} from "./route-helpers";

const UNKNOWN = "task_01KV52C0TEJSYZMCG0NCS4YWKK";

/** A follow-up body for each action that takes a parent. */
const FOLLOW_UPS: Array<[string, (id: string) => Record<string, unknown>]> = [
  ["upscale", (id) => ({ task_id: id, index: 1 })],
  ["variation", (id) => ({ task_id: id, index: 1 })],
  ["high-variation", (id) => ({ task_id: id, index: 2 })],
  ["low-variation", (id) => ({ task_id: id, index: 3 })],
  ["reroll", (id) => ({ task_id: id })],
  ["zoom", (id) => ({ task_id: id, zoom_ratio: 2 })],
  ["pan", (id) => ({ task_id: id, direction: "up" })],
  ["inpaint", (id) => ({ task_id: id })],
  ["video", (id) => ({ task_id: id, index: 0 })],
  ["remix-strong", (id) => ({ task_id: id, index: 1, prompt: "p" })],
  ["remix-subtle", (id) => ({ task_id: id, index: 1 })],
];

describe("ownership: another tenant's task is 404", () => {
  it("every follow-up on another tenant's SUCCESS task → 404 task_not_found, nothing written", async () => {
    const owner = await tenantWithKey();
    const grid = await gridParent(owner.key);
    const upscaled = await submit(owner.key, "upscale", { task_id: grid.id, index: 1 });
    const upscaledId = expectSubmitted(upscaled);
    await driveToEnd(upscaledId, owner.key);
    const ownerBefore = await footprint(owner);

    const intruder = await tenantWithKey();
    const before = await footprint(intruder);
    for (const [action, body] of FOLLOW_UPS) {
      // The grid is the parent of a follow-up; the upscale IS a follow-up: both are off limits.
      for (const parent of [grid.id, upscaled.body.data[0].task_id]) {
        const res = await submit(intruder.key, action, body(parent));
        const error = expectError(res, 404, "task_not_found");
        expect(error.message).toContain(parent);
        expect(error.field).toBe("task_id");
      }
    }
    await expectNothingWritten(intruder, before);
    // The owner's books did not move either.
    const ownerAfter = await footprint(owner);
    expect(ownerAfter.ledger).toEqual(ownerBefore.ledger);
    expect(ownerAfter.balance).toBe(ownerBefore.balance);
    expect(ownerAfter.tasks.map((r: any) => r.id)).toEqual(ownerBefore.tasks.map((r: any) => r.id));
  });

  it("/modal on another tenant's inpaint task → 404; the owner's task still waits in MODAL", async () => {
    const owner = await tenantWithKey();
    const parent = await upscaledParent(owner.key);
    const inpaint = expectSubmitted(await submit(owner.key, "inpaint", { task_id: parent.id }), "modal");

    const intruder = await tenantWithKey();
    const before = await footprint(intruder);
    const res = await submit(intruder.key, "modal", { task_id: inpaint, prompt: "steal" });
    expectError(res, 404, "task_not_found");
    await expectNothingWritten(intruder, before);

    const view = await submit(owner.key, "modal", { task_id: inpaint, prompt: marker("mine") });
    expect(view.status, JSON.stringify(view.body)).toBe(200);
    expect(view.body.data[0].task_id).toBe(inpaint);
  });

  it("the same tenant's other key may use the task (ownership is per tenant, not per key)", async () => {
    const t = await tenantWithKey();
    const grid = await gridParent(t.key);
    const second = await call("POST", `/admin/tenants/${t.tenantId}/keys`, {
      admin: true,
      body: { name: "second", rpm_limit: 1000, max_inflight: 100 },
    });
    expect(second.status).toBe(201);
    const id = expectSubmitted(await submit(second.body.key, "upscale", { task_id: grid.id, index: 2 }));
    expect((await driveToEnd(id, second.body.key)).status).toBe("SUCCESS");
  });

  it("a custom_id from another tenant's task does not reach that task", async () => {
    const owner = await tenantWithKey();
    const theirs = await gridParent(owner.key);
    const theirU2 = theirs.view.buttons.find((b: any) => b.label === "U2").customId;

    const t = await tenantWithKey();
    const mine = await gridParent(t.key);
    const balance = (await tenantRow(t.tenantId)).balance;
    const res = await submit(t.key, "upscale", { task_id: mine.id, custom_id: theirU2 });
    // Either refused at the gateway, or refused upstream and refunded: never an upscale of their image.
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect((await tenantRow(t.tenantId)).balance).toBe(balance);
  });
});

describe("unknown and unfinished parents", () => {
  it("a well-formed id nobody has → 404 for every follow-up and for /modal, nothing written", async () => {
    const t = await tenantWithKey();
    const before = await footprint(t);
    for (const [action, body] of [...FOLLOW_UPS, ["modal", (id: string) => ({ task_id: id })] as const]) {
      const res = await submit(t.key, action, body(UNKNOWN));
      const error = expectError(res, 404, "task_not_found");
      expect(error.message).toContain(UNKNOWN);
    }
    await expectNothingWritten(t, before);
  });

  it("a parent that has not reached SUCCESS → 400 parent_not_ready naming task_id, nothing charged", async () => {
    const t = await tenantWithKey();
    const pending = expectSubmitted(await submit(t.key, "imagine", { prompt: marker("still running") }));
    const before = await footprint(t);
    for (const [action, body] of FOLLOW_UPS) {
      const res = await submit(t.key, action, body(pending));
      const error = expectError(res, 400, "parent_not_ready");
      expect(error.field).toBe("task_id");
      expect(error.message).toContain(pending);
      expect(error.message).toMatch(/SUCCESS/);
    }
    const after = await footprint(t);
    expect(after.tasks.map((r: any) => r.id)).toEqual([pending]);
    expect(after.ledger).toEqual(before.ledger);
    expect(after.balance).toBe(before.balance);
    // Once it succeeds, the same follow-up goes through.
    await driveToEnd(pending, t.key);
    expectSubmitted(await submit(t.key, "upscale", { task_id: pending, index: 1 }));
  });

  it("a FAILED parent is not ready either", async () => {
    const t = await tenantWithKey();
    const failed = expectSubmitted(await submit(t.key, "imagine", { prompt: `${marker()} [sim:fail]` }));
    const end = await driveToEnd(failed, t.key);
    expect(end.status).toBe("FAILURE");
    const before = await footprint(t);
    const res = await submit(t.key, "upscale", { task_id: failed, index: 1 });
    expectError(res, 400, "parent_not_ready");
    const after = await footprint(t);
    expect(after.ledger).toEqual(before.ledger);
    expect(after.tasks).toHaveLength(1);
  });

  it("/modal on a task that is not waiting in MODAL → 409 modal_not_available, nothing charged", async () => {
    const t = await tenantWithKey();
    const grid = await gridParent(t.key);
    const before = await footprint(t);
    const res = await submit(t.key, "modal", { task_id: grid.id, prompt: "x" });
    const error = expectError(res, 409, "modal_not_available");
    expect(error.field).toBe("task_id");
    const after = await footprint(t);
    expect(after.ledger).toEqual(before.ledger);
    expect(after.balance).toBe(before.balance);
  });
});

describe("upstream-enforced parent rules: 4xx passed through, charge refunded", () => {
  /** Submit a follow-up the upstream refuses; check the pass-through and the refund. */
  async function refusedUpstream(
    t: Awaited<ReturnType<typeof tenantWithKey>>,
    action: string,
    body: Record<string, unknown>,
    pattern: RegExp,
  ) {
    const parentId = body.task_id as string;
    const balance = (await tenantRow(t.tenantId)).balance;
    const res = await submit(t.key, action, body);
    const error = expectError(res, 400, "upstream_rejected");
    expect(error.message).toMatch(pattern);
    // The upstream's message names the parent by the upstream's id; the tenant sees ours.
    expect(error.message).toContain(parentId);
    expect(error.message).not.toContain(await upstreamIdOf(parentId));
    const rows = (await footprint(t)).tasks.filter((r: any) => r.parent_task_id === parentId);
    const task = rows.at(-1);
    expect(task.action).toBe(action);
    const cost = await unitPrice(t.tenantId, action, "relax", action === "video" ? "480p" : "");
    if (cost > 0) {
      await expectRefunded(task.id, cost, balance, t.tenantId);
    } else {
      expect(await ledgerOfTask(task.id)).toEqual([]);
      expect((await taskRow(task.id)).status).toBe("FAILURE");
    }
    expect((await tenantRow(t.tenantId)).balance).toBe(balance);
    expect((await tenantRow(t.tenantId)).inflight).toBe(0);
    // The failed task is visible to its tenant as FAILURE with the reason.
    const view = await get(t.key, task.id);
    expect(view.body.status).toBe("FAILURE");
    expect(view.body.fail_reason).toMatch(pattern);
    return task;
  }

  it("zoom, pan and inpaint on a grid (not upscaled) → 400 with the upstream's message, refunded", async () => {
    const t = await tenantWithKey();
    const grid = await gridParent(t.key);
    await refusedUpstream(t, "zoom", { task_id: grid.id, zoom_ratio: 1.5 }, /requires an upscaled task/);
    await refusedUpstream(t, "pan", { task_id: grid.id, direction: "right" }, /requires an upscaled task/);
    await refusedUpstream(t, "inpaint", { task_id: grid.id }, /requires an upscaled task/);
  });

  it("upscale of an upscaled image → 400 (needs a grid), refunded", async () => {
    const t = await tenantWithKey();
    const up = await upscaledParent(t.key);
    await refusedUpstream(t, "upscale", { task_id: up.id, index: 1 }, /4-image grid/);
  });

  it("reroll of an upscale and video from a non-imagine task → 400, refunded", async () => {
    const t = await tenantWithKey();
    const up = await upscaledParent(t.key);
    await refusedUpstream(t, "reroll", { task_id: up.id }, /reroll requires an imagine or reroll task/);
    await refusedUpstream(t, "video", { task_id: up.id }, /requires an imagine task/);
  });

  it("remix of a pre-v8 task → 400, refunded", async () => {
    const t = await tenantWithKey();
    const v7 = await gridParent(t.key, { version: "7" });
    await refusedUpstream(t, "remix-strong", { task_id: v7.id, index: 1 }, /v8/);
  });

  it("after a refused follow-up, the balance and ledger sum agree", async () => {
    const t = await tenantWithKey();
    const grid = await gridParent(t.key);
    await refusedUpstream(t, "zoom", { task_id: grid.id }, /upscaled/);
    const { ledger, balance } = await footprint(t);
    expect(ledger.reduce((sum: number, r: any) => sum + r.amount, 0)).toBe(balance);
  });
});
