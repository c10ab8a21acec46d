/**
 * Every statement of the archive job, of the reads across the archive and of the cron's purge
 * is an index search (EXPLAIN QUERY PLAN of the statements the code really runs, on tables
 * with history), and so are the statements inside the archive's triggers.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { purgeIdempotencyKeys, purgeRateWindows } from "../../src/db/maintenance";
import { archiveSettledHistory } from "../../src/services/archive";
import { ledgerHistoryPage, usageHistoryTotals } from "../../src/services/ledger-history";
import { AGE, DAY, tenantWithHistory } from "../services/archive-helpers";
import { expectNoScans, planOf, type Recorded, recordingDb } from "./plans";

const SCAN =
  /^SCAN (ledger|tasks|tenants|rate_windows|idempotency|archive_objects|archive_usage|ledger_checkpoints)\b/;

let t: Awaited<ReturnType<typeof tenantWithHistory>>;

beforeAll(async () => {
  for (let i = 0; i < 4; i++) t = await tenantWithHistory();
  await archiveSettledHistory(env, Date.now(), { afterMs: AGE, maxBatches: 3 });
});

describe("archive statements are index-backed", () => {
  it("the archive job: plan, commit (with the usage totals) and the tenant walk", async () => {
    const { db, statements } = recordingDb();
    const run = await archiveSettledHistory({ ...env, DB: db }, Date.now(), { afterMs: AGE });
    expect(run.objects).toBeGreaterThan(0);
    expect(statements.some((s) => s.sql.includes("DELETE FROM ledger"))).toBe(true);
    await expectNoScans(statements, SCAN);
  });

  it("the statements inside the archive's triggers", async () => {
    const by = (sql: string, ...params: unknown[]): Recorded => ({ sql, params });
    await expectNoScans(
      [
        by(
          `SELECT 1 FROM archive_objects o WHERE o.tenant_id = ?1 AND o.state = 'open' AND ?2 BETWEEN o.min_id AND o.max_id`,
          t.tenantId,
          1,
        ),
        by("SELECT 1 FROM ledger_checkpoints c WHERE c.tenant_id = ?1", t.tenantId),
        by("SELECT 1 FROM tasks k WHERE k.id = ?1 AND k.settled_at IS NOT NULL", t.open),
        by("SELECT 1 FROM ledger l WHERE l.task_id = ?1", t.open),
        by(
          "UPDATE ledger_checkpoints SET archived_sum = archived_sum + 1, archived_rows = archived_rows + 1 WHERE tenant_id = ?1",
          t.tenantId,
        ),
        by(
          "UPDATE archive_objects SET deleted_rows = deleted_rows + 1 WHERE tenant_id = ?1 AND state = 'open'",
          t.tenantId,
        ),
      ],
      SCAN,
    );
  });

  it("ledger pages and usage across the archive, per tenant and for every tenant", async () => {
    const { db, statements } = recordingDb();
    const e = { ...env, DB: db };
    const range = { from: t.m1 - 2 * DAY, to: Date.now() };
    await ledgerHistoryPage(e, { ...range, tenantId: t.tenantId }, 0, 100);
    await ledgerHistoryPage(e, range, 0, 100);
    await usageHistoryTotals(e, { ...range, tenantId: t.tenantId }, ["day", "action"]);
    await usageHistoryTotals(e, range, ["tenant"]);
    await usageHistoryTotals(e, { ...range, keyId: t.keyId }, []);
    await expectNoScans(statements, SCAN);
  });

  it("the purge of rate windows and idempotency keys", async () => {
    const { db, statements } = recordingDb();
    await purgeRateWindows(db, Date.now() - 600_000);
    await purgeIdempotencyKeys(db, Date.now() - DAY);
    await expectNoScans(statements, SCAN);
    for (const statement of statements)
      expect((await planOf(statement)).join(" | ")).toMatch(/_by_(start|time)/);
  });
});
