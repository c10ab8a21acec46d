import { createRoute, z } from "@hono/zod-openapi";
import { RANGE_DESCRIPTION } from "../../../domain/ranges";
import { createRouter, errorResponses } from "../../../http";
import { LedgerEntrySchema, ledgerJson } from "../../../schemas/ledger";
import { ledgerHistoryPage } from "../../../services/ledger-history";
import { AREAS, json } from "../../helpers";
import { LedgerPageQuery, LedgerQuery, ledgerFilter } from "../../ledger-query";

export const listLedgerRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/admin/ledger",
    ...AREAS.adminFinance,
    summary: "the usage ledger, filtered, with cursor pagination",
    description: `${RANGE_DESCRIPTION} Pages hold \`limit\` rows (1-1000, default 100).`,
    request: { query: LedgerQuery.extend(LedgerPageQuery) },
    responses: {
      200: json(
        z.object({ data: z.array(LedgerEntrySchema), next_cursor: z.string().nullable() }),
        "ledger rows",
      ),
      ...errorResponses(400, 401),
    },
  }),
  async (c) => {
    const query = c.req.valid("query");
    const page = await ledgerHistoryPage(c.env, ledgerFilter(query), query.cursor ?? 0, query.limit);
    return c.json(
      {
        data: page.rows.map(ledgerJson),
        next_cursor: page.nextCursor === null ? null : String(page.nextCursor),
      },
      200,
    );
  },
);
