/**
 * Reads across hot and archived history: the operator's ledger (paged), its CSV, usage and the
 * tenant's own usage answer exactly what they answered before the archive job moved the old
 * months to R2, for a range that crosses the boundary.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ApiError } from "../../../src/domain/errors";
import { archivedLedgerRows, archiveSettledHistory } from "../../../src/services/archive";
import { rows } from "../../db/money-helpers";
import { call, ledgerOf } from "../../helpers";
import { AGE, DAY, tenantWithHistory } from "../../services/archive-helpers";

async function allPages(path: string) {
  const pages: unknown[][] = [];
  let cursor: string | null = null;
  do {
    const response = await call("GET", `${path}&limit=2${cursor ? `&cursor=${cursor}` : ""}`, {
      admin: true,
    });
    expect(response.status).toBe(200);
    pages.push(response.body.data);
    cursor = response.body.next_cursor;
  } while (cursor !== null);
  return pages;
}

async function everyRead(t: Awaited<ReturnType<typeof tenantWithHistory>>, other: string) {
  const from = new Date(t.m1 - 2 * DAY).toISOString();
  const q = `from=${from}`;
  const admin = (path: string) => call("GET", path, { admin: true }).then((r) => [r.status, r.body]);
  return {
    ledgerPages: await allPages(`/admin/ledger?tenant_id=${t.tenantId}&${q}`),
    otherTenant: await allPages(`/admin/ledger?tenant_id=${other}&${q}`),
    charges: await admin(`/admin/ledger?kind=charge&${q}&limit=1000`),
    byTask: await admin(`/admin/ledger?task_id=${t.old[1]}&${q}`),
    csv: await admin(`/admin/ledger.csv?tenant_id=${t.tenantId}&${q}`),
    usage: await admin(`/admin/usage?tenant_id=${t.tenantId}&${q}`),
    usageAll: await admin(`/admin/usage?${q}&group_by=tenant,action`),
    usageTotal: await admin(`/admin/usage?tenant_id=${t.tenantId}&${q}&group_by=`),
    tenantUsage: await call("GET", `/v1/usage?${q}&limit=3`, { key: t.key }).then((r) => [r.status, r.body]),
  };
}

describe("ledger reads across the archive", () => {
  it("answer the same before and after archiving, across the boundary", async () => {
    const t = await tenantWithHistory();
    const other = await tenantWithHistory();
    const before = await everyRead(t, other.tenantId);
    expect(before.ledgerPages.flat().length).toBe((await ledgerOf(t.tenantId)).length);

    const run = await archiveSettledHistory(env, Date.now(), { afterMs: AGE });
    expect(run.objects).toBeGreaterThanOrEqual(4);
    expect(
      await rows("SELECT object_key FROM archive_objects WHERE tenant_id = ?1", t.tenantId),
    ).toHaveLength(2);
    expect((await ledgerOf(t.tenantId)).length).toBeLessThan(before.ledgerPages.flat().length);

    expect(await everyRead(t, other.tenantId)).toEqual(before);
  });
});

describe("a sparse read over a long archived range", () => {
  it("is refused with a 400 naming `from` past the objects one read may open", async () => {
    const t = await tenantWithHistory();
    await archiveSettledHistory(env, Date.now(), { afterMs: AGE });
    const filter = { tenantId: t.tenantId, kind: "adjustment", from: t.m1 - 2 * DAY, to: Date.now() };
    expect(await archivedLedgerRows(env, filter, 0, 100, 2)).toEqual([]);
    const refused = await archivedLedgerRows(env, filter, 0, 100, 1).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ApiError);
    expect(refused).toMatchObject({ status: 400, options: { field: "from" } });
  });
});
