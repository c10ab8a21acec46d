/**
 * Top-ups and adjustments, GET /admin/ledger (filters, cursor pagination) and
 * GET /admin/ledger.csv (streamed in pages, exact decimal USD).
 */

import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { credit } from "../../../src/db/credits";
import type { LedgerEntry } from "../../../src/db/ledger-reads";
import { insertCredit } from "../../../src/db/ledger-writes";
import {
  addFault,
  admin,
  countBy,
  finish,
  ledgerSum,
  parseCsv,
  rows,
  snapshot,
  taskIdOf,
  tenantRow,
  uid,
  usdToMicros,
} from "../../db/money-helpers";
import { call, submit, type TenantWithKey, tenantWithKey } from "../../helpers";

/** The ledger row as D1 stores it. */
type LedgerRow = LedgerEntry;

const allRows = (where = "1 = 1", ...params: unknown[]) =>
  rows<LedgerRow>(`SELECT * FROM ledger WHERE ${where} ORDER BY id`, ...params);

/** Every page of GET /admin/ledger for a query, following next_cursor. */
async function allPages(query: Record<string, string>, limit: number) {
  const pages: any[][] = [];
  let cursor: string | null = null;
  for (let guard = 0; guard < 10_000; guard++) {
    const params = new URLSearchParams({ ...query, limit: String(limit) });
    if (cursor) params.set("cursor", cursor);
    const res = await admin("GET", `/admin/ledger?${params}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.data.length).toBeLessThanOrEqual(limit);
    pages.push(res.body.data);
    cursor = res.body.next_cursor;
    if (cursor === null) return pages;
    expect(res.body.data).toHaveLength(limit);
    expect(cursor).toBe(String(res.body.data.at(-1).id));
  }
  throw new Error("pagination did not end");
}

async function idsOf(query: Record<string, string>, limit = 1000): Promise<number[]> {
  return (await allPages(query, limit)).flat().map((e) => e.id);
}

describe("top-ups", () => {
  it("POST /admin/tenants/{id}/topups adds to the balance and answers the ledger row", async () => {
    const t = await tenantWithKey(0);
    const res = await admin("POST", `/admin/tenants/${t.tenantId}/topups`, {
      amount_micros: 1_234_567,
      reason: "invoice 42",
    });
    expect(res.status).toBe(201);
    const [stored] = await allRows("tenant_id = ?1", t.tenantId);
    expect(res.body).toEqual({
      id: stored!.id,
      tenant_id: t.tenantId,
      key_id: null,
      task_id: null,
      kind: "topup",
      action: null,
      amount_micros: 1_234_567,
      balance_after_micros: 1_234_567,
      reason: "invoice 42",
      ref_id: null,
      step: null,
      created_at: new Date(stored!.created_at).toISOString(),
    });
    const second = await admin("POST", `/admin/tenants/${t.tenantId}/topups`, {
      amount_micros: 1,
      reason: "r",
    });
    expect(second.body.balance_after_micros).toBe(1_234_568);
    expect((await tenantRow(t.tenantId)).balance).toBe(1_234_568);
    expect(await ledgerSum(t.tenantId)).toBe(1_234_568);
  });

  it("refuses invalid amounts, unknown tenants and missing credentials, writing nothing", async () => {
    const t = await tenantWithKey(1_000);
    const before = await snapshot();
    for (const body of [
      { amount_micros: 0, reason: "zero" },
      { amount_micros: -1, reason: "negative" },
      { amount_micros: 1.5, reason: "fraction" },
      { amount_micros: "100", reason: "string" },
      { amount_micros: Number.MAX_SAFE_INTEGER + 2, reason: "unsafe" },
      { amount_micros: 100 },
      { amount_micros: 100, reason: "   " },
      { amount_micros: 100, reason: "x", currency: "USD" },
    ]) {
      const res = await admin("POST", `/admin/tenants/${t.tenantId}/topups`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    const unknown = await admin("POST", "/admin/tenants/ten_nope/topups", {
      amount_micros: 5,
      reason: "who",
    });
    expect(unknown.status).toBe(404);
    const noAuth = await call("POST", `/admin/tenants/${t.tenantId}/topups`, {
      body: { amount_micros: 5, reason: "anon" },
    });
    expect(noAuth.status).toBe(401);
    const tenantKey = await call("POST", `/admin/tenants/${t.tenantId}/topups`, {
      key: t.key,
      body: { amount_micros: 5, reason: "self-service" },
    });
    expect(tenantKey.status).toBe(401);
    expect(await snapshot()).toEqual(before);
  });
});

describe("adjustments", () => {
  it("signed adjustments move the balance both ways, down to exactly 0", async () => {
    const t = await tenantWithKey(1_000);
    const up = await admin("POST", `/admin/tenants/${t.tenantId}/adjustments`, {
      amount_micros: 500,
      reason: "goodwill",
    });
    expect(up.status).toBe(201);
    expect(up.body).toMatchObject({ kind: "adjustment", amount_micros: 500, balance_after_micros: 1_500 });
    const down = await admin("POST", `/admin/tenants/${t.tenantId}/adjustments`, {
      amount_micros: -300,
      reason: "correction",
    });
    expect(down.body).toMatchObject({ kind: "adjustment", amount_micros: -300, balance_after_micros: 1_200 });
    const zero = await admin("POST", `/admin/tenants/${t.tenantId}/adjustments`, {
      amount_micros: -1_200,
      reason: "close",
    });
    expect(zero.status).toBe(201);
    expect(zero.body.balance_after_micros).toBe(0);
    expect((await tenantRow(t.tenantId)).balance).toBe(0);
    expect(await ledgerSum(t.tenantId)).toBe(0);
  });

  it("a negative adjustment beyond the balance → 409 insufficient_balance, nothing written", async () => {
    const t = await tenantWithKey(1_000);
    const before = await snapshot();
    const res = await admin("POST", `/admin/tenants/${t.tenantId}/adjustments`, {
      amount_micros: -1_001,
      reason: "too much",
    });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("insufficient_balance");
    expect(await snapshot()).toEqual(before);
    const zero = await admin("POST", `/admin/tenants/${t.tenantId}/adjustments`, {
      amount_micros: 0,
      reason: "0",
    });
    expect(zero.status).toBe(400);
    expect(await snapshot()).toEqual(before);
  });

  it("20 concurrent −100 adjustments against 1000: exactly 10 succeed", async () => {
    const t = await tenantWithKey(1_000);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        admin("POST", `/admin/tenants/${t.tenantId}/adjustments`, { amount_micros: -100, reason: `c${i}` }),
      ),
    );
    expect(countBy(results, (r) => r.status)).toEqual({ 201: 10, 409: 10 });
    expect((await tenantRow(t.tenantId)).balance).toBe(0);
    expect(await ledgerSum(t.tenantId)).toBe(0);
    const balances = results.filter((r) => r.status === 201).map((r) => r.body.balance_after_micros);
    expect(balances.sort((a, b) => a - b)).toEqual([0, 100, 200, 300, 400, 500, 600, 700, 800, 900]);
  });
});

describe("GET /admin/ledger", () => {
  let a: TenantWithKey;
  let a2: { id: string; key: string };
  let b: TenantWithKey;
  let failedTask: string;
  const HOUR = 3_600_000;
  // Ten days ago, 00:00 UTC: inside the default range (the last 30 days) of a read without `from`.
  const DAY = Math.floor((Date.now() - 10 * 24 * HOUR) / (24 * HOUR)) * 24 * HOUR;
  const at = (ms: number) => new Date(DAY + ms).toISOString();
  const atPlus2 = (ms: number) => new Date(DAY + ms + 2 * HOUR).toISOString().replace("Z", "+02:00");

  beforeAll(async () => {
    a = await tenantWithKey(5_000_000);
    const second = await admin("POST", `/admin/tenants/${a.tenantId}/keys`, { name: "second" });
    a2 = { id: second.body.id, key: second.body.key };
    b = await tenantWithKey(5_000_000);
    const tasks = [
      taskIdOf(await submit(a.key, "imagine", { prompt: `ledger a ${uid()}` })),
      taskIdOf(await submit(a2.key, "describe", { image_urls: ["https://example.com/d.png"] })),
      taskIdOf(await submit(a2.key, "imagine", { prompt: `ledger a2 ${uid()}`, speed: "turbo" })),
      taskIdOf(await submit(b.key, "imagine", { prompt: `ledger b ${uid()}` })),
    ];
    const marker = `ledger-fail-${uid()}`;
    await addFault({ type: "status", status: 503, on: "submit", prompt_contains: marker });
    expect((await submit(a.key, "imagine", { prompt: marker })).status).toBe(502);
    failedTask = (
      await rows<{ id: string }>(
        "SELECT id FROM tasks WHERE status = 'FAILURE' AND tenant_id = ?1",
        a.tenantId,
      )
    )[0]!.id;
    await admin("POST", `/admin/tenants/${a.tenantId}/adjustments`, { amount_micros: -7, reason: "fee" });
    // Dated rows for from/to: one top-up per hour, DAY 00:00 … 05:00 UTC.
    for (let h = 0; h < 6; h++)
      await credit(env.DB, b.tenantId, "topup", 1_000 + h, `hour ${h}`, DAY + h * HOUR);
    for (const id of tasks) await finish(id, id === tasks[3] ? b.key : id === tasks[0] ? a.key : a2.key);
  });

  it("answers every row in id order with the documented fields", async () => {
    const ids = await idsOf({});
    expect(ids).toEqual((await allRows()).map((r) => r.id));
    const [first] = (await allPages({ tenant_id: a.tenantId, kind: "refund" }, 10)).flat();
    const stored = (await allRows("tenant_id = ?1 AND kind = 'refund'", a.tenantId))[0]!;
    expect(first).toEqual({
      id: stored.id,
      tenant_id: a.tenantId,
      key_id: a.keyId,
      task_id: failedTask,
      kind: "refund",
      action: "imagine",
      amount_micros: 54_048,
      balance_after_micros: stored.balance_after,
      reason: stored.reason,
      ref_id: stored.ref_id,
      step: "submit",
      created_at: new Date(stored.created_at).toISOString(),
    });
    const charge = (await allRows("task_id = ?1 AND kind = 'charge'", failedTask))[0]!;
    expect(stored.ref_id).toBe(charge.id);
  });

  it("filters by tenant, key, task, kind and action, alone and combined", async () => {
    expect(await idsOf({ tenant_id: a.tenantId })).toEqual(
      (await allRows("tenant_id = ?1", a.tenantId)).map((r) => r.id),
    );
    const aRows = await allRows("tenant_id = ?1", a.tenantId);
    expect(countBy(aRows, (r) => r.kind)).toEqual({ topup: 1, charge: 4, refund: 1, adjustment: 1 });

    const byKey2 = (await allPages({ key_id: a2.id }, 100)).flat();
    expect(byKey2.map((e) => [e.kind, e.action, e.amount_micros])).toEqual([
      ["charge", "describe", -66_048],
      ["charge", "imagine", -120_000],
    ]);
    const byKey1 = (await allPages({ key_id: a.keyId }, 100)).flat();
    expect(byKey1.map((e) => e.kind)).toEqual(["charge", "charge", "refund"]);

    const byTask = (await allPages({ task_id: failedTask }, 100)).flat();
    expect(byTask.map((e) => e.kind)).toEqual(["charge", "refund"]);

    const refunds = (await allPages({ kind: "refund" }, 100)).flat();
    expect(refunds.map((e) => e.task_id)).toEqual([failedTask]);

    const describes = (await allPages({ action: "describe" }, 100)).flat();
    expect(describes).toHaveLength(1);
    expect(describes[0].key_id).toBe(a2.id);

    const aImagineCharges = (
      await allPages({ tenant_id: a.tenantId, kind: "charge", action: "imagine" }, 100)
    ).flat();
    expect(aImagineCharges.map((e) => e.amount_micros)).toEqual([-54_048, -120_000, -54_048]);
    expect(await idsOf({ tenant_id: b.tenantId, kind: "refund" })).toEqual([]);
    expect(await idsOf({ tenant_id: "ten_unknown" })).toEqual([]);
  });

  it("from is inclusive and to exclusive, in any ISO offset", async () => {
    const hours = async (query: Record<string, string>) =>
      (await allPages({ tenant_id: b.tenantId, ...query }, 100)).flat().map((e) => e.reason);
    expect(await hours({ from: at(1 * HOUR), to: at(3 * HOUR) })).toEqual(["hour 1", "hour 2"]);
    expect(await hours({ from: atPlus2(1 * HOUR), to: atPlus2(2 * HOUR + 1) })).toEqual(["hour 1", "hour 2"]);
    expect(await hours({ from: at(5 * HOUR - 1), to: at(24 * HOUR) })).toEqual(["hour 5"]);
    expect(await hours({ to: at(1) })).toEqual(["hour 0"]);
    expect(await hours({ from: at(5 * HOUR), to: at(5 * HOUR) })).toEqual([]);
    const recent = await hours({ from: at(24 * HOUR) });
    expect(recent).toEqual(["test funds", "submit"]); // the top-up and the charge of b's task
  });

  it("cursor pagination covers every row exactly once, for any page size and filter", async () => {
    const everything = (await allRows()).map((r) => r.id);
    for (const limit of [1, 2, 3, 7, 100]) {
      const pages = await allPages({}, limit);
      const ids = pages.flat().map((e) => e.id);
      expect(ids).toEqual(everything);
      expect(new Set(ids).size).toBe(ids.length);
      expect(pages).toHaveLength(Math.ceil(everything.length / limit));
    }
    const aIds = (await allRows("tenant_id = ?1", a.tenantId)).map((r) => r.id);
    expect((await allPages({ tenant_id: a.tenantId }, 2)).flat().map((e) => e.id)).toEqual(aIds);
    const res = await admin("GET", `/admin/ledger?limit=2&cursor=${everything.at(-2)}`);
    expect(res.body.data.map((e: any) => e.id)).toEqual([everything.at(-1)]);
    expect(res.body.next_cursor).toBeNull();
  });

  it("refuses bad queries", async () => {
    for (const query of [
      "limit=0",
      "limit=1001",
      "limit=abc",
      "cursor=-1",
      "kind=bonus",
      "action=paint",
      "from=yesterday",
      "to=2026-13-01T00:00:00Z",
    ]) {
      const res = await admin("GET", `/admin/ledger?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.body.error.code).toBe("invalid_request");
    }
    expect((await call("GET", "/admin/ledger")).status).toBe(401);
  });
});

describe("GET /admin/ledger.csv", () => {
  const HEADER = [
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
  const SPECIAL_REASONS = ['comma, and "quotes"', "two\r\nlines", "=SUM(A1:A2)", "-minus", "plain"];
  /** What a spreadsheet-safe export shows: formula starts (not plain numbers) get a leading quote. */
  const spreadsheetSafe = (text: string) =>
    /^[=+\-@\t\r]/.test(text) && !/^[+-]?\d+(\.\d+)?$/.test(text) ? `'${text}` : text;
  const START = Math.floor((Date.now() - 5 * 86_400_000) / 86_400_000) * 86_400_000;
  let big: TenantWithKey;

  beforeAll(async () => {
    big = await tenantWithKey(0);
    // 1,200 rows written with the real ledger statement, in batches.
    const amounts = Array.from(
      { length: 1_200 },
      (_, i) => [1, 10, 999_999, 1_000_000, 1_000_001, 123_456_789, 55_040, 45_040][i % 8]! + i,
    );
    // Five days ago, 00:00 UTC: inside the default range of a read without `from`.
    const at = START;
    for (let i = 0; i < amounts.length; i += 100) {
      const statements = amounts.slice(i, i + 100).flatMap((amount, j) => [
        env.DB.prepare("UPDATE tenants SET balance = balance + ?2 WHERE id = ?1").bind(big.tenantId, amount),
        insertCredit(env.DB, {
          tenantId: big.tenantId,
          kind: "topup",
          amountMicros: amount,
          reason: SPECIAL_REASONS[(i + j) % SPECIAL_REASONS.length]!,
          at: at + i + j,
        }),
      ]);
      await env.DB.batch(statements);
    }
    for (const amount of [-1, -55_040, -999_999, -1_000_000]) {
      const res = await admin("POST", `/admin/tenants/${big.tenantId}/adjustments`, {
        amount_micros: amount,
        reason: "negative",
      });
      expect(res.status).toBe(201);
    }
  });

  async function csv(query = "") {
    const res = await call("GET", `/admin/ledger.csv${query}`, { admin: true });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/csv/);
    expect(res.headers.get("content-disposition")).toMatch(/attachment; filename="ledger\.csv"/);
    expect(typeof res.body).toBe("string");
    expect(res.body.endsWith("\r\n")).toBe(true);
    return parseCsv(res.body as string);
  }

  function expectRowMatches(cells: string[], stored: LedgerRow) {
    const [id, createdAt, tenantId, keyId, taskId, kind, action, amount, balanceAfter, reason, refId] = cells;
    expect(cells).toHaveLength(HEADER.length);
    expect(Number(id)).toBe(stored.id);
    expect(createdAt).toBe(new Date(stored.created_at).toISOString());
    expect(tenantId).toBe(stored.tenant_id);
    expect(keyId).toBe(stored.key_id ?? "");
    expect(taskId).toBe(stored.task_id ?? "");
    expect(kind).toBe(stored.kind);
    expect(action).toBe(stored.action ?? "");
    expect(usdToMicros(amount!)).toBe(stored.amount);
    expect(usdToMicros(balanceAfter!)).toBe(stored.balance_after);
    expect(reason).toBe(spreadsheetSafe(stored.reason ?? ""));
    expect(refId).toBe(stored.ref_id === null ? "" : String(stored.ref_id));
  }

  it("streams the header and every row (several pages) with exact decimal USD", async () => {
    const stored = await allRows();
    expect(stored.length).toBeGreaterThan(1_000);
    const [header, ...lines] = await csv();
    expect(header).toEqual(HEADER);
    expect(lines).toHaveLength(stored.length);
    for (const [i, cells] of lines.entries()) expectRowMatches(cells, stored[i]!);
    expect(new Set(lines.map((l) => l[0])).size).toBe(stored.length);
  });

  it("renders amounts exactly, with six decimals", async () => {
    const [, ...lines] = await csv(`?tenant_id=${big.tenantId}`);
    const amounts = lines.map((l) => l[7]);
    expect(amounts.slice(0, 8)).toEqual([
      "0.000001",
      "0.000011",
      "1.000001",
      "1.000003",
      "1.000005",
      "123.456794",
      "0.055046",
      "0.045047",
    ]);
    expect(amounts.slice(-4)).toEqual(["-0.000001", "-0.055040", "-0.999999", "-1.000000"]);
    for (const cell of lines.flatMap((l) => [l[7]!, l[8]!])) expect(cell).toMatch(/^-?\d+\.\d{6}$/);
    const total = lines.reduce((sum, l) => sum + usdToMicros(l[7]!), 0);
    expect(total).toBe((await tenantRow(big.tenantId)).balance);
    expect(usdToMicros(lines.at(-1)![8]!)).toBe((await tenantRow(big.tenantId)).balance);
  });

  it("quotes cells with commas, quotes and line breaks, and keeps their text (formulas neutralised)", async () => {
    const [, ...lines] = await csv(`?tenant_id=${big.tenantId}`);
    expect(lines.slice(0, 5).map((l) => l[9])).toEqual([
      'comma, and "quotes"',
      "two\r\nlines",
      "'=SUM(A1:A2)",
      "'-minus",
      "plain",
    ]);
    expect(SPECIAL_REASONS.map(spreadsheetSafe)).toEqual(lines.slice(0, 5).map((l) => l[9]));
  });

  it("applies the same filters as the JSON ledger", async () => {
    const stored = await allRows("tenant_id = ?1 AND kind = 'adjustment'", big.tenantId);
    const [header, ...lines] = await csv(`?tenant_id=${big.tenantId}&kind=adjustment`);
    expect(header).toEqual(HEADER);
    expect(lines).toHaveLength(4);
    for (const [i, cells] of lines.entries()) expectRowMatches(cells, stored[i]!);
    const dated = await csv(
      `?tenant_id=${big.tenantId}&from=${new Date(START + 500).toISOString()}&to=${new Date(START + 510).toISOString()}`,
    );
    expect(dated.slice(1).map((l) => new Date(l[1]!).getTime() - START)).toEqual([
      500, 501, 502, 503, 504, 505, 506, 507, 508, 509,
    ]);
    expect(await csv("?tenant_id=ten_nobody")).toEqual([HEADER]);
  });

  it("refuses bad filters and missing credentials", async () => {
    expect((await call("GET", "/admin/ledger.csv?kind=bonus", { admin: true })).status).toBe(400);
    expect((await call("GET", "/admin/ledger.csv")).status).toBe(401);
  });
});

describe("after all ledger writes", () => {
  it("the books reconcile", async () => {
    const report = await call("GET", "/admin/reconciliation", { admin: true });
    expect(report.body.breaches).toEqual([]);
    expect(report.body.ok).toBe(true);
  });
});
