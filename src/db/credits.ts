import { ApiError } from "../domain/errors";
import { insertCredit } from "./ledger-writes";

/** Top-ups and adjustments: the balance and its ledger row change together or not at all. */
export async function credit(
  db: D1Database,
  tenantId: string,
  kind: "topup" | "adjustment",
  amountMicros: number,
  reason: string,
  at = Date.now(),
) {
  try {
    const results = await db.batch([
      db.prepare("UPDATE tenants SET balance = balance + ?2 WHERE id = ?1").bind(tenantId, amountMicros),
      insertCredit(db, { tenantId, kind, amountMicros, reason, at }),
      db.prepare("SELECT * FROM ledger WHERE id = last_insert_rowid()"),
    ]);
    if (results[0]!.meta.changes !== 1) return null;
    return results[2]!.results[0] as Record<string, unknown>;
  } catch (error) {
    if (error instanceof Error && /balance_nonnegative/.test(error.message)) {
      throw new ApiError("adjustment_exceeds_balance", "this adjustment would make the balance negative", {
        field: "amount_micros",
      });
    }
    throw error;
  }
}

export async function spendOfKey(db: D1Database, keyId: string, day: string, month: string) {
  const { results } = await db
    .prepare("SELECT period, spent FROM key_spend WHERE key_id = ?1 AND period IN (?2, ?3)")
    .bind(keyId, day, month)
    .all<{ period: string; spent: number }>();
  return {
    day: results.find((r) => r.period === day)?.spent ?? 0,
    month: results.find((r) => r.period === month)?.spent ?? 0,
  };
}
