/** Query parameters shared by the ledger reads (operator ledger, CSV and usage; the tenant's usage). */
import { z } from "@hono/zod-openapi";
import type { LedgerFilter, UsageDimension } from "../db/ledger-reads";
import { ACTIONS } from "../domain/actions";
import { ApiError } from "../domain/errors";
import { boundedRange, RANGE_DOCS } from "../domain/ranges";
import { LEDGER_KINDS } from "../schemas/ledger";
import { isoTimeField } from "../schemas/time";

export const LedgerQuery = z.object({
  tenant_id: z.string().optional(),
  key_id: z.string().optional(),
  task_id: z.string().optional(),
  kind: z.enum(LEDGER_KINDS).optional(),
  action: z.enum(ACTIONS).optional(),
  from: isoTimeField(RANGE_DOCS.from),
  to: isoTimeField(RANGE_DOCS.to),
});

/** The query as a ledger filter, its range defaulted and bounded (src/domain/ranges.ts). */
export function ledgerFilter(
  query: z.infer<typeof LedgerQuery>,
  now = Date.now(),
): LedgerFilter & { from: number } {
  const range = boundedRange(query.from, query.to, now);
  return {
    tenantId: query.tenant_id,
    keyId: query.key_id,
    taskId: query.task_id,
    kind: query.kind,
    action: query.action,
    from: range.from,
    to: range.to,
  };
}

/** A page of `limit` rows (1-1000, default 100) after `cursor`. */
export const LedgerPageQuery = {
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.coerce.number().int().min(0).optional(),
};

const USAGE_DIMENSIONS = ["day", "tenant", "key", "action"] as const;

/** `group_by` of a usage read: a comma-separated list of dimensions (default all four). */
export function parseGroupBy(value: string | undefined): UsageDimension[] {
  const dims = (value ?? USAGE_DIMENSIONS.join(","))
    .split(",")
    .map((d) => d.trim())
    .filter(Boolean);
  for (const d of dims) {
    if (!(USAGE_DIMENSIONS as readonly string[]).includes(d)) {
      throw new ApiError("invalid_request", `group_by: '${d}' is not one of ${USAGE_DIMENSIONS.join(", ")}`, {
        field: "group_by",
      });
    }
  }
  return dims as UsageDimension[];
}
