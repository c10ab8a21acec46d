/**
 * Ledger reads across hot and archived history (issue 12, item 6): what /admin/ledger,
 * /admin/ledger.csv, /admin/usage and /v1/usage answer is the same before and after the
 * archive job moved a month out of D1.
 */
import { archivedUsageTotals } from "../db/archive";
import {
  type LedgerEntry,
  type LedgerFilter,
  ledgerPage,
  type UsageDimension,
  type UsageRow,
  usageTotals,
} from "../db/ledger-reads";
import type { Env } from "../env";
import { archivedLedgerRows } from "./archive";

type HistoryEnv = Pick<Env, "DB" | "ARCHIVE_BUCKET">;

/**
 * One page in id order, hot rows and archived rows merged; the cursor stays the last id seen.
 * The archived side reads only the objects of the range it needs (src/services/archive.ts).
 */
export async function ledgerHistoryPage(
  env: HistoryEnv,
  filter: LedgerFilter & { from: number },
  afterId: number,
  limit: number,
): Promise<{ rows: LedgerEntry[]; nextCursor: number | null }> {
  const [hot, archived] = await Promise.all([
    ledgerPage(env.DB, filter, afterId, limit),
    archivedLedgerRows(env, filter, afterId, limit + 1),
  ]);
  if (!archived.length) return hot;
  const merged = [...hot.rows, ...archived].sort((a, b) => a.id - b.id);
  const rows = merged.slice(0, limit);
  const more = merged.length > limit || hot.nextCursor !== null;
  return { rows, nextCursor: more ? rows.at(-1)!.id : null };
}

const DIMENSIONS: UsageDimension[] = ["day", "tenant", "key", "action"];

/** Hot totals plus the archived days' totals (archive_usage), merged per group, in group order. */
export async function usageHistoryTotals(
  env: HistoryEnv,
  filter: LedgerFilter & { from: number },
  groupBy: UsageDimension[],
): Promise<UsageRow[]> {
  const [hot, archived] = await Promise.all([
    usageTotals(env.DB, filter, groupBy),
    // A task filter is answered from the hot ledger only: archived days are not kept per task.
    filter.taskId ? Promise.resolve([]) : archivedUsageTotals(env.DB, filter, groupBy),
  ]);
  const dims = DIMENSIONS.filter((d) => groupBy.includes(d));
  const keyOf = (row: UsageRow) => JSON.stringify(dims.map((d) => row[d] ?? null));
  const merged = new Map<string, UsageRow>();
  for (const row of [...hot, ...archived]) {
    const key = keyOf(row);
    const seen = merged.get(key);
    if (!seen) {
      merged.set(key, { ...row });
      continue;
    }
    seen.charged_micros += row.charged_micros;
    seen.refunded_micros += row.refunded_micros;
    seen.net_micros += row.net_micros;
    seen.charged_tasks += row.charged_tasks;
    seen.refunded_tasks += row.refunded_tasks;
  }
  // SQLite's order: by each group column in group_by order, NULL first.
  const order = (a: UsageRow, b: UsageRow) => {
    for (const d of groupBy) {
      const x = a[d] ?? null;
      const y = b[d] ?? null;
      if (x === y) continue;
      if (x === null) return -1;
      if (y === null) return 1;
      return x < y ? -1 : 1;
    }
    return 0;
  };
  return [...merged.values()].sort(order);
}
