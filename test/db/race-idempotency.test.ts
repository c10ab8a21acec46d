/** 50 identical requests with one Idempotency-Key at once: one task, one charge. */
import { afterAll, describe, expect, it } from "vitest";
import { call, submit, tenantWithKey, untilAllTasksSettle } from "../helpers";
import { countBy, finish, rows, tenantRow, uid } from "./money-helpers";

// The admitted tasks poll by real alarms: let them finish before the runtime is torn down.
afterAll(() => untilAllTasksSettle(), 60_000);

describe("Idempotency-Key under concurrency", () => {
  it("50 parallel identical requests: exactly one charge, every success carries the same task id", async () => {
    const t = await tenantWithKey(1_000_000);
    const headers = { "Idempotency-Key": `race-${uid()}` };
    const body = { prompt: `idem race ${uid()}`, speed: "turbo" };
    const results = await Promise.all(
      Array.from({ length: 50 }, () => submit(t.key, "imagine", body, headers)),
    );

    const statuses = countBy(results, (r) => r.status);
    expect(
      Object.keys(statuses).every((s) => s === "200" || s === "409"),
      JSON.stringify(statuses),
    ).toBe(true);
    for (const r of results.filter((r) => r.status === 409)) {
      expect(r.body.error.code).toBe("idempotency_in_progress");
    }
    const ok = results.filter((r) => r.status === 200);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    const ids = new Set(ok.map((r) => r.body.data[0].task_id));
    expect(ids.size).toBe(1);
    const [taskId] = [...ids] as string[];
    // Exactly one of them is the original; all other successes are replays.
    expect(ok.filter((r) => r.headers.get("Idempotent-Replayed") === null)).toHaveLength(1);

    const charges = await rows(
      "SELECT task_id FROM ledger WHERE tenant_id = ?1 AND kind = 'charge'",
      t.tenantId,
    );
    expect(charges).toEqual([{ task_id: taskId }]);
    expect(await rows("SELECT id FROM tasks WHERE tenant_id = ?1", t.tenantId)).toEqual([{ id: taskId }]);
    expect((await tenantRow(t.tenantId)).balance).toBe(1_000_000 - 120_000);
    const windows = await rows<{ total: number }>(
      "SELECT SUM(count) AS total FROM rate_windows WHERE key_id = ?1",
      t.keyId,
    );
    expect(windows[0]!.total).toBe(1);

    await finish(taskId!, t.key);
    expect((await call("GET", "/admin/reconciliation", { admin: true })).body.breaches).toEqual([]);
  }, 120_000);
});
