/**
 * Hundreds of simultaneous submits against limits that admit exactly N of them.
 * D1 serialises the admission batches; named CHECK constraints refuse the rest.
 */
import { afterAll, describe, expect, it } from "vitest";
import { call, submit, tenantWithKey, untilAllTasksSettle } from "../helpers";
import { countBy, ledgerSum, rows, spendRows, tenantRow, uid } from "./money-helpers";

// The admitted tasks poll by real alarms: let them finish before the runtime is torn down.
afterAll(() => untilAllTasksSettle(), 60_000);

const IMAGINE_RELAX = 54_048;

describe("balance under concurrency", () => {
  it("250 simultaneous submits against a balance for exactly 100: 100 × 200, 150 × 402, balance 0", async () => {
    const N = 100;
    const TOTAL = 250;
    const t = await tenantWithKey(N * IMAGINE_RELAX);
    const tag = uid();
    const results = await Promise.all(
      Array.from({ length: TOTAL }, (_, i) => submit(t.key, "imagine", { prompt: `race ${tag} ${i}` })),
    );
    expect(countBy(results, (r) => r.status)).toEqual({ 200: N, 402: TOTAL - N });
    for (const r of results.filter((r) => r.status === 402)) {
      expect(r.body.error.code).toBe("insufficient_balance");
    }
    const admitted = results.filter((r) => r.status === 200).map((r) => r.body.data[0].task_id as string);
    expect(new Set(admitted).size).toBe(N);

    expect((await tenantRow(t.tenantId)).balance).toBe(0);
    expect(await ledgerSum(t.tenantId)).toBe(0);
    const charges = await rows<{ task_id: string; amount: number; balance_after: number }>(
      "SELECT task_id, amount, balance_after FROM ledger WHERE tenant_id = ?1 AND kind = 'charge'",
      t.tenantId,
    );
    expect(charges).toHaveLength(N);
    expect(new Set(charges.map((c) => c.task_id))).toEqual(new Set(admitted));
    expect(charges.every((c) => c.amount === -IMAGINE_RELAX)).toBe(true);
    // Each charge recorded the balance right after its own debit: every step down to 0 exactly once.
    expect(charges.map((c) => c.balance_after).sort((a, b) => a - b)).toEqual(
      Array.from({ length: N }, (_, k) => k * IMAGINE_RELAX),
    );
    const tasks = await rows<{ id: string; cost: number }>(
      "SELECT id, cost FROM tasks WHERE tenant_id = ?1",
      t.tenantId,
    );
    expect(tasks).toHaveLength(N);
    expect(tasks.every((k) => k.cost === IMAGINE_RELAX)).toBe(true);
    const spend = await spendRows(t.keyId);
    expect(spend.map((s) => s.spent)).toEqual([N * IMAGINE_RELAX, N * IMAGINE_RELAX]);
    const windows = await rows<{ total: number }>(
      "SELECT SUM(count) AS total FROM rate_windows WHERE key_id = ?1",
      t.keyId,
    );
    expect(windows[0]!.total).toBe(N);
  }, 120_000);
});

describe("after the races", () => {
  it("the books reconcile", async () => {
    const report = await call("GET", "/admin/reconciliation", { admin: true });
    expect(report.body.breaches).toEqual([]);
    expect(report.body.ok).toBe(true);
  });
});
