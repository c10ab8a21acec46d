import { createRoute, z } from "@hono/zod-openapi";
import { RANGE_DESCRIPTION } from "../../../domain/ranges";
import { createRouter, errorResponses } from "../../../http";
import { AREAS } from "../../helpers";
import { LedgerQuery, ledgerFilter } from "../../ledger-query";
import { ledgerCsvStream } from "./ledger-csv";

export const ledgerCsvRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/admin/ledger.csv",
    ...AREAS.adminFinance,
    summary: "the same ledger as CSV, streamed page by page",
    description: `${RANGE_DESCRIPTION} Cells a spreadsheet would evaluate as a formula (starting with =, +, -, @, tab or carriage return, other than plain numbers) are prefixed with a single quote.`,
    request: { query: LedgerQuery },
    responses: {
      200: { description: "CSV", content: { "text/csv": { schema: z.string() } } },
      ...errorResponses(400, 401),
    },
  }),
  (c) =>
    new Response(ledgerCsvStream(c.env, ledgerFilter(c.req.valid("query"))), {
      headers: {
        "content-type": "text/csv; charset=utf-8",
        "content-disposition": 'attachment; filename="ledger.csv"',
      },
    }) as never,
);
