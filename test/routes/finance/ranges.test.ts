/**
 * Bounded reads: /admin/ledger, /admin/ledger.csv, /admin/usage and /v1/usage read the
 * last 30 days unless `from` says otherwise, at most 366 days per request (else a 400
 * naming `from`), pages stay bounded, and every statement is an index search. And the
 * CSV cannot run: formula cells come out neutralised.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { credit } from "../../../src/db/credits";
import { ledgerPage, usageTotals } from "../../../src/db/ledger-reads";
import { admin, parseCsv } from "../../db/money-helpers";
import { planOf, recordingDb } from "../../db/plans";
import { call, type TenantWithKey, tenantWithKey } from "../../helpers";
import { expectError } from "../route-helpers";

const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();

let t: TenantWithKey;
const now = Date.now();

beforeAll(async () => {
  t = await tenantWithKey(1_000_000);
  // Besides the fresh top-up: one row 40 days ago, one 400 days ago.
  await credit(env.DB, t.tenantId, "topup", 40, "forty days ago", now - 40 * DAY);
  await credit(env.DB, t.tenantId, "topup", 400, "four hundred days ago", now - 400 * DAY);
});

const reasons = (rows: { reason: string }[]) => rows.map((r) => r.reason);

describe("default range: the last 30 days", () => {
  it("/admin/ledger, /v1/usage and the CSV without from see only the last 30 days", async () => {
    const ledger = await admin("GET", `/admin/ledger?tenant_id=${t.tenantId}`);
    expect(ledger.status).toBe(200);
    expect(reasons(ledger.body.data)).toEqual(["test funds"]);

    const usage = await call("GET", "/v1/usage", { key: t.key });
    expect(usage.status).toBe(200);
    expect(reasons(usage.body.entries)).toEqual(["test funds"]);

    const csv = await call("GET", `/admin/ledger.csv?tenant_id=${t.tenantId}`, { admin: true });
    expect(
      parseCsv(csv.body)
        .slice(1)
        .map((l) => l[9]),
    ).toEqual(["test funds"]);
  });

  it("an explicit from reaches further back, up to 366 days", async () => {
    const from = iso(now - 45 * DAY);
    const ledger = await admin("GET", `/admin/ledger?tenant_id=${t.tenantId}&from=${from}`);
    expect(reasons(ledger.body.data)).toEqual(["test funds", "forty days ago"]);
    const usage = await call("GET", `/v1/usage?from=${from}`, { key: t.key });
    expect(reasons(usage.body.entries)).toEqual(["test funds", "forty days ago"]);
    // Exactly 366 days is fine.
    const longest = await admin(
      "GET",
      `/admin/ledger?tenant_id=${t.tenantId}&from=${iso(now - 500 * DAY)}&to=${iso(now - 134 * DAY)}`,
    );
    expect(longest.status, JSON.stringify(longest.body)).toBe(200);
    expect(reasons(longest.body.data)).toEqual(["four hundred days ago"]);
  });

  it("only `to` given: the 30 days before it", async () => {
    const ledger = await admin("GET", `/admin/ledger?tenant_id=${t.tenantId}&to=${iso(now - 20 * DAY)}`);
    expect(reasons(ledger.body.data)).toEqual(["forty days ago"]);
  });
});

describe("maximum span: 366 days", () => {
  const TOO_LONG = [
    `from=${iso(now - 367 * DAY)}`,
    `from=${iso(now - 800 * DAY)}&to=${iso(now - 433 * DAY)}`,
    "from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
  ];

  it("every bounded read refuses a longer range with a 400 naming from", async () => {
    for (const range of TOO_LONG) {
      for (const [path, auth] of [
        [`/admin/ledger?${range}`, { admin: true }],
        [`/admin/ledger.csv?${range}`, { admin: true }],
        [`/admin/usage?${range}`, { admin: true }],
        [`/v1/usage?${range}`, { key: t.key }],
      ] as const) {
        const error = expectError(await call("GET", path, auth), 400, "invalid_request");
        expect(error.field, path).toBe("from");
        expect(error.message, path).toMatch(/^from: must be at most 366 days before (now|to)/);
      }
    }
  });

  it("to before from is a 400 naming to", async () => {
    const error = expectError(
      await admin("GET", `/admin/ledger?from=${iso(now - DAY)}&to=${iso(now - 2 * DAY)}`),
      400,
      "invalid_request",
    );
    expect(error.field).toBe("to");
  });

  it("page sizes are bounded (1-1000)", async () => {
    for (const path of ["/v1/usage?limit=1001", "/v1/usage?limit=0"]) {
      expect(expectError(await call("GET", path, { key: t.key }), 400, "invalid_request").field).toBe(
        "limit",
      );
    }
    expect(expectError(await admin("GET", "/admin/ledger?limit=5000"), 400, "invalid_request").field).toBe(
      "limit",
    );
  });

  it("the OpenAPI document states the default and the maximum", async () => {
    const doc = (await call("GET", "/openapi.json")).body;
    for (const [path, method] of [
      ["/admin/ledger", "get"],
      ["/admin/ledger.csv", "get"],
      ["/admin/usage", "get"],
      ["/v1/usage", "get"],
    ] as const) {
      const op = doc.paths[path][method];
      expect(op.description, path).toMatch(/30 days/);
      expect(op.description, path).toMatch(/366 days/);
      const from = op.parameters.find((p: { name: string }) => p.name === "from");
      expect(from.schema.description ?? from.description, path).toMatch(/default 30 days/);
    }
  });
});

describe("every ledger read is an index search", () => {
  it("ledger pages and usage totals, with each filter, never scan the ledger", async () => {
    const { db, statements } = recordingDb();
    const from = now - 30 * DAY;
    const filters = [
      { from },
      { from, to: now },
      { tenantId: t.tenantId, from },
      { keyId: t.keyId, from },
      { taskId: "task_01KV52C0TEJSYZMCG0NCS4YWKK", from },
      { tenantId: t.tenantId, kind: "charge", action: "imagine", from },
    ];
    for (const filter of filters) {
      await ledgerPage(db, filter, 0, 100);
      await ledgerPage(db, filter, 12345, 1000);
      await usageTotals(db, filter, ["day", "tenant", "key", "action"]);
      await usageTotals(db, filter, ["tenant"]);
      await usageTotals(db, filter, []);
    }
    expect(statements).toHaveLength(filters.length * 5);
    const expectedIndex = (sql: string, params: unknown[]) =>
      sql.includes("task_id = ")
        ? "ledger_by_task_kind"
        : sql.includes("key_id = ")
          ? "ledger_by_key_time"
          : sql.includes("tenant_id = ")
            ? "ledger_by_tenant_time"
            : params.length
              ? "ledger_by_time"
              : "";
    for (const statement of statements) {
      const plan = await planOf(statement);
      const text = plan.join(" | ");
      expect(text, statement.sql).not.toMatch(/\bSCAN ledger\b/);
      expect(text, statement.sql).toMatch(
        new RegExp(`SEARCH ledger USING (COVERING )?INDEX ${expectedIndex(statement.sql, statement.params)}`),
      );
    }
  });
});

describe("the CSV cannot run", () => {
  it("an adjustment reason that is a formula comes out neutralised, end to end", async () => {
    const hyperlink = '=HYPERLINK("http://evil.example/x","click")';
    const formulas = [hyperlink, "@SUM(1+1)*cmd|' /C calc'!A0", "+1+2", "-2+3", "\t=1+2", "=1+2\r\n=3"];
    const tenant = await tenantWithKey(1_000_000);
    for (const reason of formulas) {
      const res = await admin("POST", `/admin/tenants/${tenant.tenantId}/adjustments`, {
        amount_micros: -7,
        reason,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
    }
    const csv = await call("GET", `/admin/ledger.csv?tenant_id=${tenant.tenantId}&kind=adjustment`, {
      admin: true,
    });
    expect(csv.status).toBe(200);
    // The raw bytes: the quote is inside the usual CSV quoting.
    expect(csv.body).toContain(`"'=HYPERLINK(""http://evil.example/x"",""click"")"`);
    const lines = parseCsv(csv.body).slice(1);
    expect(lines).toHaveLength(formulas.length);
    // "\t=1+2" loses its leading tab to the server's trim of reasons; what is stored is what is shown.
    const stored = (
      await env.DB.prepare(
        "SELECT reason FROM ledger WHERE tenant_id = ?1 AND kind = 'adjustment' ORDER BY id",
      )
        .bind(tenant.tenantId)
        .all<{ reason: string }>()
    ).results.map((r) => r.reason);
    expect(lines.map((l) => l[9])).toEqual(stored.map((r) => `'${r}`));
    for (const line of lines) {
      // No cell of any row starts a formula, except negative amounts, which stay numbers.
      for (const cell of line) {
        if (/^[=+\-@\t\r]/.test(cell)) expect(cell, JSON.stringify(line)).toMatch(/^-\d+\.\d{6}$/);
      }
      expect(line[7]).toBe("-0.000007");
    }
  });
});
