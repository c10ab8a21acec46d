import { createRoute, z } from "@hono/zod-openapi";
import { boundedRange, RANGE_DESCRIPTION, RANGE_DOCS } from "../../domain/ranges";
import { createRouter, errorResponses } from "../../http";
import { LedgerEntrySchema, ledgerJson, UsageRowSchema } from "../../schemas/ledger";
import { isoTimeField } from "../../schemas/time";
import { ledgerHistoryPage, usageHistoryTotals } from "../../services/ledger-history";
import { AREAS, json } from "../helpers";
import { LedgerPageQuery, parseGroupBy } from "../ledger-query";

export const usageRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/v1/usage",
    ...AREAS.account,
    summary: "the tenant's own usage totals and ledger rows",
    description: `${RANGE_DESCRIPTION} \`entries\` pages hold \`limit\` rows (1-1000, default 100).`,
    request: {
      query: z.object({
        from: isoTimeField(RANGE_DOCS.from),
        to: isoTimeField(RANGE_DOCS.to),
        group_by: z.string().optional().openapi({ example: "day,action" }),
        ...LedgerPageQuery,
      }),
    },
    responses: {
      200: json(
        z.object({
          totals: z.array(UsageRowSchema),
          entries: z.array(LedgerEntrySchema),
          next_cursor: z.string().nullable(),
        }),
        "usage",
      ),
      ...errorResponses(400, 401, 403),
    },
  }),
  async (c) => {
    const query = c.req.valid("query");
    const filter = {
      tenantId: c.get("principal").tenant.id,
      ...boundedRange(query.from, query.to, Date.now()),
    };
    const groupBy = parseGroupBy(query.group_by ?? "day,action").filter((d) => d !== "tenant");
    const [totals, page] = await Promise.all([
      usageHistoryTotals(c.env, filter, groupBy),
      ledgerHistoryPage(c.env, filter, query.cursor ?? 0, query.limit),
    ]);
    return c.json(
      {
        totals,
        entries: page.rows.map(ledgerJson),
        next_cursor: page.nextCursor === null ? null : String(page.nextCursor),
      },
      200,
    );
  },
);
