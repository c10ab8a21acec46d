import { type Refused, refusedOr } from "./constraints";
import { insertCredit } from "./ledger-writes";

/**
 * Top-ups and adjustments: the balance and its ledger row change together or not at all.
 * Null when the tenant does not exist; refused when an adjustment would make the balance negative.
 */
export async function credit(
  db: D1Database,
  tenantId: string,
  kind: "topup" | "adjustment",
  amountMicros: number,
  reason: string,
  at = Date.now(),
): Promise<Record<string, unknown> | null | Refused<"balance_nonnegative">> {
  const results = await refusedOr(
    db.batch([
      db.prepare("UPDATE tenants SET balance = balance + ?2 WHERE id = ?1").bind(tenantId, amountMicros),
      insertCredit(db, { tenantId, kind, amountMicros, reason, at }),
      db.prepare("SELECT * FROM ledger WHERE id = last_insert_rowid()"),
    ]),
    ["balance_nonnegative"],
  );
  if (!Array.isArray(results)) return results;
  if (results[0]!.meta.changes !== 1) return null;
  return results[2]!.results[0] as Record<string, unknown>;
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
