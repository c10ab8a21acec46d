import { createRoute, z } from "@hono/zod-openapi";
import { RANGE_DESCRIPTION } from "../../domain/ranges";
import { createRouter, errorResponses } from "../../http";
import { UsageRowSchema } from "../../schemas/ledger";
import { usageHistoryTotals } from "../../services/ledger-history";
import { AREAS, json } from "../helpers";
import { LedgerQuery, ledgerFilter, parseGroupBy } from "../ledger-query";

export const usageRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/admin/usage",
    ...AREAS.adminFinance,
    summary: "charged, refunded and net totals grouped by day, tenant, key and/or action",
    description: RANGE_DESCRIPTION,
    request: {
      query: LedgerQuery.omit({ kind: true }).extend({
        group_by: z.string().optional().openapi({ example: "day,tenant,key,action" }),
      }),
    },
    responses: {
      200: json(z.object({ group_by: z.array(z.string()), data: z.array(UsageRowSchema) }), "totals"),
      ...errorResponses(400, 401),
    },
  }),
  async (c) => {
    const query = c.req.valid("query");
    const groupBy = parseGroupBy(query.group_by);
    const rows = await usageHistoryTotals(c.env, ledgerFilter(query), groupBy);
    return c.json({ group_by: groupBy, data: rows }, 200);
  },
);
