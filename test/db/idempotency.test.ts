/**
 * Idempotency-Key on submits: a retry with the same key and body replays the first
 * answer without a second charge; another body is 422; an upstream failure releases the key.
 */
import { describe, expect, it } from "vitest";
import { call, driveUntilStepRefunded, submit, tenantWithKey } from "../helpers";
import {
  addFault,
  admin,
  finish,
  ledgerSum,
  rows,
  snapshot,
  taskIdOf,
  tenantRow,
  uid,
  upscaledParent,
} from "./money-helpers";

const IMAGINE_RELAX = 54_048;
const idem = () => ({ "Idempotency-Key": `idem-${uid()}-${uid()}` });

async function chargesOf(tenantId: string) {
  return rows<{ task_id: string; amount: number }>(
    "SELECT task_id, amount FROM ledger WHERE tenant_id = ?1 AND kind = 'charge' ORDER BY id",
    tenantId,
  );
}

describe("replays", () => {
  it("same key + same body → same task id, one charge, Idempotent-Replayed: true", async () => {
    const t = await tenantWithKey(1_000_000);
    const headers = idem();
    const body = { prompt: `idem same ${uid()}`, speed: "fast" };
    const first = await submit(t.key, "imagine", body, headers);
    const taskId = taskIdOf(first);
    expect(first.headers.get("Idempotent-Replayed")).toBeNull();
    expect(first.body).toEqual({ code: 200, data: [{ status: "submitted", task_id: taskId }] });

    for (let i = 0; i < 3; i++) {
      const again = await submit(t.key, "imagine", body, headers);
      expect(again.status).toBe(200);
      expect(again.headers.get("Idempotent-Replayed")).toBe("true");
      expect(again.body).toEqual(first.body);
    }
    expect(await chargesOf(t.tenantId)).toEqual([{ task_id: taskId, amount: -66_048 }]);
    expect((await tenantRow(t.tenantId)).balance).toBe(1_000_000 - 66_048);
    expect(await rows("SELECT id FROM tasks WHERE tenant_id = ?1", t.tenantId)).toHaveLength(1);

    // Still a replay once the task has finished.
    await finish(taskId, t.key);
    const late = await submit(t.key, "imagine", body, headers);
    expect(late.status).toBe(200);
    expect(late.body.data[0].task_id).toBe(taskId);
    expect(late.headers.get("Idempotent-Replayed")).toBe("true");
    expect(await chargesOf(t.tenantId)).toHaveLength(1);
  });

  it("key order (also nested) does not change the request; the bare path is imagine", async () => {
    const t = await tenantWithKey(1_000_000);
    const headers = idem();
    const prompt = `idem order ${uid()}`;
    const first = await submit(
      t.key,
      "imagine",
      { prompt, speed: "relax", metadata: { a: 1, b: { x: 1, y: [1, 2] } } },
      headers,
    );
    const taskId = taskIdOf(first);
    const reordered = await submit(
      t.key,
      "imagine",
      { metadata: { b: { y: [1, 2], x: 1 }, a: 1 }, speed: "relax", prompt },
      headers,
    );
    expect(reordered.status).toBe(200);
    expect(reordered.body.data[0].task_id).toBe(taskId);
    expect(reordered.headers.get("Idempotent-Replayed")).toBe("true");
    const bare = await call("POST", "/v1/midjourney/generations", {
      key: t.key,
      headers,
      body: { speed: "relax", prompt, metadata: { a: 1, b: { x: 1, y: [1, 2] } } },
    });
    expect(bare.status).toBe(200);
    expect(bare.body.data[0].task_id).toBe(taskId);
    expect(await chargesOf(t.tenantId)).toHaveLength(1);
    await finish(taskId, t.key);
  });

  it("same key + different body → 422 idempotency_key_reused, nothing written", async () => {
    const t = await tenantWithKey(1_000_000);
    const headers = idem();
    const prompt = `idem diff ${uid()}`;
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt }, headers));
    await finish(taskId, t.key);
    for (const [action, body] of [
      ["imagine", { prompt: `${prompt}!` }],
      ["imagine", { prompt, speed: "turbo" }],
      ["imagine", { prompt, metadata: { order: 2 } }],
      ["describe", { image_urls: ["https://example.com/a.png"] }],
    ] as const) {
      const before = await snapshot();
      const res = await submit(t.key, action, body, headers);
      expect(res.status, `${action} ${JSON.stringify(body)}`).toBe(422);
      expect(res.body.error.code).toBe("idempotency_key_reused");
      expect(res.body.error.type).toBe("idempotency_error");
      expect(await snapshot()).toEqual(before);
    }
    expect(await chargesOf(t.tenantId)).toHaveLength(1);
  });

  it("keys are per tenant: another tenant with the same key gets its own task and charge", async () => {
    const a = await tenantWithKey(1_000_000);
    const b = await tenantWithKey(1_000_000);
    const headers = idem();
    const body = { prompt: `idem tenants ${uid()}` };
    const ta = taskIdOf(await submit(a.key, "imagine", body, headers));
    const tb = await submit(b.key, "imagine", body, headers);
    expect(tb.status).toBe(200);
    expect(tb.headers.get("Idempotent-Replayed")).toBeNull();
    expect(tb.body.data[0].task_id).not.toBe(ta);
    expect(await chargesOf(a.tenantId)).toHaveLength(1);
    expect(await chargesOf(b.tenantId)).toHaveLength(1);
    await finish(ta, a.key);
    await finish(tb.body.data[0].task_id, b.key);
  });

  it("two keys of one tenant share the tenant's idempotency keys", async () => {
    const t = await tenantWithKey(1_000_000);
    const second = await admin("POST", `/admin/tenants/${t.tenantId}/keys`, { name: "second" });
    const headers = idem();
    const body = { prompt: `idem keys ${uid()}` };
    const first = taskIdOf(await submit(t.key, "imagine", body, headers));
    const other = await submit(second.body.key, "imagine", body, headers);
    expect(other.status).toBe(200);
    expect(other.body.data[0].task_id).toBe(first);
    expect(await chargesOf(t.tenantId)).toHaveLength(1);
    await finish(first, t.key);
  });
});

describe("a key that did not lead to a task is not kept", () => {
  it("a refused admission (402) stores no key: the retry after a top-up is a new attempt", async () => {
    const t = await tenantWithKey(IMAGINE_RELAX - 1);
    const headers = idem();
    const body = { prompt: `idem broke ${uid()}` };
    const refused = await submit(t.key, "imagine", body, headers);
    expect(refused.status).toBe(402);
    expect(await rows("SELECT * FROM idempotency WHERE tenant_id = ?1", t.tenantId)).toEqual([]);
    await admin("POST", `/admin/tenants/${t.tenantId}/topups`, { amount_micros: 1, reason: "enough" });
    const ok = await submit(t.key, "imagine", body, headers);
    expect(ok.status).toBe(200);
    expect(ok.headers.get("Idempotent-Replayed")).toBeNull();
    expect((await tenantRow(t.tenantId)).balance).toBe(0);
    await finish(taskIdOf(ok), t.key);
  });

  it("after an upstream failure at submit the key is released: the retry makes a new, charged attempt", async () => {
    const t = await tenantWithKey(1_000_000);
    const marker = `idem-fail-${uid()}`;
    await addFault({ type: "status", status: 503, on: "submit", prompt_contains: marker, count: 1 });
    const headers = idem();
    const body = { prompt: `${marker} a cat` };
    const failed = await submit(t.key, "imagine", body, headers);
    expect(failed.status).toBe(502);
    expect(failed.body.error.code).toBe("upstream_error");
    expect(await rows("SELECT * FROM idempotency WHERE tenant_id = ?1", t.tenantId)).toEqual([]);
    const failedTask = (
      await rows<{ id: string; status: string }>(
        "SELECT id, status FROM tasks WHERE tenant_id = ?1",
        t.tenantId,
      )
    )[0]!;
    expect(failedTask.status).toBe("FAILURE");
    expect((await tenantRow(t.tenantId)).balance).toBe(1_000_000);

    const retry = await submit(t.key, "imagine", body, headers);
    const taskId = taskIdOf(retry);
    expect(taskId).not.toBe(failedTask.id);
    expect(retry.headers.get("Idempotent-Replayed")).toBeNull();
    const again = await submit(t.key, "imagine", body, headers);
    expect(again.body.data[0].task_id).toBe(taskId);
    expect(again.headers.get("Idempotent-Replayed")).toBe("true");

    const kinds = await rows<{ kind: string; task_id: string; amount: number }>(
      "SELECT kind, task_id, amount FROM ledger WHERE tenant_id = ?1 AND kind != 'topup' ORDER BY id",
      t.tenantId,
    );
    expect(kinds).toEqual([
      { kind: "charge", task_id: failedTask.id, amount: -IMAGINE_RELAX },
      { kind: "refund", task_id: failedTask.id, amount: IMAGINE_RELAX },
      { kind: "charge", task_id: taskId, amount: -IMAGINE_RELAX },
    ]);
    expect((await tenantRow(t.tenantId)).balance).toBe(1_000_000 - IMAGINE_RELAX);
    expect(await ledgerSum(t.tenantId)).toBe(1_000_000 - IMAGINE_RELAX);
    await finish(taskId, t.key);
  });
});

describe("/modal with an Idempotency-Key", () => {
  async function inpaintInModal() {
    const t = await tenantWithKey(1_000_000);
    const { upscaled } = await upscaledParent(t);
    const inpaint = taskIdOf(await submit(t.key, "inpaint", { task_id: upscaled }));
    return { t, inpaint };
  }

  async function replayedModal() {
    const { t, inpaint } = await inpaintInModal();
    const headers = idem();
    const body = { task_id: inpaint, prompt: `modal idem ${uid()}` };
    const first = await submit(t.key, "modal", body, headers);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body.data[0]).toEqual({ status: "submitted", task_id: inpaint });
    const again = await submit(t.key, "modal", body, headers);
    return { t, inpaint, first, again };
  }

  async function failedModalRetried() {
    const { t, inpaint } = await inpaintInModal();
    const marker = `modal-fail-${uid()}`;
    await addFault({ type: "status", status: 503, on: "submit", action: "modal", prompt_contains: marker });
    const headers = idem();
    const body = { task_id: inpaint, prompt: `${marker} repaint` };
    const failed = await submit(t.key, "modal", body, headers);
    expect(failed.status).toBe(502);
    const retry = await submit(t.key, "modal", body, headers);
    return { t, inpaint, retry };
  }

  it("a replayed /modal is marked as a replay and charges once", async () => {
    const { t, inpaint, again } = await replayedModal();
    expect(again.status).toBe(200);
    expect(again.headers.get("Idempotent-Replayed")).toBe("true");
    expect(again.body.data[0].task_id).toBe(inpaint);
    const charges = await chargesOf(t.tenantId);
    expect(charges.filter((c) => c.task_id === inpaint)).toEqual([{ task_id: inpaint, amount: -66_048 }]);
    expect((await finish(inpaint, t.key)).status).toBe("SUCCESS");
    expect((await tenantRow(t.tenantId)).balance).toBe(1_000_000 - 54_048 - 66_048 - 66_048);
  });

  it("a replayed /modal answers exactly like the first /modal", async () => {
    const { first, again } = await replayedModal();
    expect(again.body).toEqual(first.body);
  });

  it("a /modal that failed upstream is refunded, and its retry charges nothing", async () => {
    const { t, inpaint } = await failedModalRetried();
    // A 503 is ambiguous: the charge waits until polling shows the upstream never ran it.
    await driveUntilStepRefunded(inpaint, "modal.1");
    expect((await tenantRow(t.tenantId)).balance).toBe(1_000_000 - 54_048 - 66_048);
    const money = await rows<{ kind: string; amount: number }>(
      "SELECT kind, amount FROM ledger WHERE task_id = ?1 ORDER BY id",
      inpaint,
    );
    expect(money).toEqual([
      { kind: "charge", amount: -66_048 },
      { kind: "refund", amount: 66_048 },
    ]);
  });

  it("the retry of a /modal that failed upstream is not answered as a success", async () => {
    const { retry } = await failedModalRetried();
    expect(retry.status, JSON.stringify(retry.body)).not.toBe(200);
  });
});
