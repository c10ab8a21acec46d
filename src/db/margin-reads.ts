/**
 * Margin per tenant, day, action and upstream (pool member), from settled tasks: what tenants paid net of refunds
 * (revenue), what the upstream reported it billed (upstream cost), and the difference.
 * Tasks whose upstream never said what it billed are counted apart, never guessed; failed
 * and cancelled tasks cost nothing upstream (it refunds them, as we do).
 */
export const MARGIN_DIMENSIONS = ["tenant", "day", "action", "upstream"] as const;
export type MarginDimension = (typeof MARGIN_DIMENSIONS)[number];

const COLUMN: Record<MarginDimension, string> = {
  tenant: "tenant_id",
  day: "strftime('%Y-%m-%d', finished_at / 1000, 'unixepoch')",
  action: "action",
  upstream: "upstream_id",
};

export interface MarginRow {
  tenant?: string;
  day?: string;
  action?: string;
  /** null: settled before tasks recorded their member, or never forwarded. */
  upstream?: string | null;
  tasks: number;
  revenue_micros: number;
  upstream_cost_micros: number;
  margin_micros: number;
  /** Settled tasks whose upstream cost is unknown (not in upstream_cost_micros). */
  unknown_cost_tasks: number;
  /** Tasks whose upstream cost exceeded what the tenant paid. */
  negative_margin_tasks: number;
}

export async function marginTotals(
  db: D1Database,
  range: { from: number; to: number | undefined; tenantId?: string },
  groupBy: readonly MarginDimension[],
): Promise<MarginRow[]> {
  const where = ["finished_at >= ?1", "finished_at < ?2", "settled_at IS NOT NULL"];
  const params: unknown[] = [range.from, range.to ?? Number.MAX_SAFE_INTEGER];
  if (range.tenantId) {
    params.push(range.tenantId);
    where.push(`tenant_id = ?${params.length}`);
  }
  const keys = groupBy.map((d) => `${COLUMN[d]} AS ${d}`);
  const sql = `SELECT ${[
    ...keys,
    "COUNT(*) AS tasks",
    "COALESCE(SUM(COALESCE(net_charge, 0)), 0) AS revenue_micros",
    // The upstream refunds what it failed or cancelled: only successful tasks cost us.
    "COALESCE(SUM(CASE WHEN status = 'SUCCESS' THEN COALESCE(upstream_cost, 0) ELSE 0 END), 0) AS upstream_cost_micros",
    "COUNT(CASE WHEN upstream_cost IS NULL AND status = 'SUCCESS' THEN 1 END) AS unknown_cost_tasks",
    "COUNT(CASE WHEN status = 'SUCCESS' AND upstream_cost > COALESCE(net_charge, 0) THEN 1 END) AS negative_margin_tasks",
  ].join(
    ", ",
  )} FROM tasks WHERE ${where.join(" AND ")}${groupBy.length ? ` GROUP BY ${groupBy.join(", ")} ORDER BY ${groupBy.join(", ")}` : ""}`;
  const { results } = await db
    .prepare(sql)
    .bind(...params)
    .all<Omit<MarginRow, "margin_micros">>();
  return results.map((row) => ({ ...row, margin_micros: row.revenue_micros - row.upstream_cost_micros }));
}
