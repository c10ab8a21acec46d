import type { LedgerFilter } from "../../../db/ledger-reads";
import { csvLine } from "../../../domain/csv";
import { microsToUsdString } from "../../../domain/money";
import type { Env } from "../../../env";
import { ledgerHistoryPage } from "../../../services/ledger-history";

const CSV_COLUMNS = [
  "id",
  "created_at",
  "tenant_id",
  "key_id",
  "task_id",
  "kind",
  "action",
  "amount_usd",
  "balance_after_usd",
  "reason",
  "ref_id",
];

const PAGE_ROWS = 500;

/**
 * The ledger rows of `filter` as CSV (header first, CRLF lines), pulled one page at a time
 * so a large range is never held in memory.
 */
export function ledgerCsvStream(
  env: Pick<Env, "DB" | "ARCHIVE_BUCKET">,
  filter: LedgerFilter & { from: number },
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let cursor = 0;
  let headerSent = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!headerSent) {
        headerSent = true;
        controller.enqueue(encoder.encode(`${csvLine(CSV_COLUMNS)}\r\n`));
        return;
      }
      const page = await ledgerHistoryPage(env, filter, cursor, PAGE_ROWS);
      const lines = page.rows.map((r) =>
        csvLine([
          r.id,
          new Date(r.created_at).toISOString(),
          r.tenant_id,
          r.key_id,
          r.task_id,
          r.kind,
          r.action,
          microsToUsdString(r.amount),
          microsToUsdString(r.balance_after),
          r.reason,
          r.ref_id,
        ]),
      );
      if (lines.length) controller.enqueue(encoder.encode(`${lines.join("\r\n")}\r\n`));
      if (page.nextCursor === null) controller.close();
      else cursor = page.nextCursor;
    },
  });
}
