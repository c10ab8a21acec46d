/**
 * src/db/constraints.ts is the one reader of D1's error text: every named CHECK and every
 * trigger RAISE of the migrations is mapped there, nothing there is missing from the
 * migrations, and no trigger of the current schema fakes another constraint's message.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { isDatabaseBusy, NAMED_CHECKS, RAISED_NAMES, refusalOf, refusedOr } from "../../src/db/constraints";

const sql = env.TEST_MIGRATIONS.flatMap((migration) => migration.queries).join("\n");
const namesIn = (pattern: RegExp) =>
  [...new Set([...sql.matchAll(pattern)].map((match) => match[1]!))].sort();

describe("the constraint map and the migrations", () => {
  it("reads the migrations (so the checks below mean something)", () => {
    expect(env.TEST_MIGRATIONS.length).toBeGreaterThanOrEqual(7);
  });

  it("maps every named CHECK constraint, and only those", () => {
    expect(namesIn(/CONSTRAINT\s+(\w+)\s+CHECK/gi)).toEqual([...NAMED_CHECKS].sort());
  });

  it("maps every trigger's RAISE name, and only those", () => {
    expect(namesIn(/RAISE\s*\(\s*ABORT\s*,\s*'(\w+)'\s*\)/gi)).toEqual([...RAISED_NAMES].sort());
  });

  it("no trigger of the current schema raises another constraint's message", async () => {
    const { results } = await env.DB.prepare(
      "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'",
    ).all<{
      name: string;
      sql: string;
    }>();
    expect(results.length).toBeGreaterThan(0);
    // Bookkeeping triggers of the archive (migrations/0013) raise nothing: they count what a
    // guarded delete moved into the checkpoint.
    const bookkeeping = ["ledger_delete_moves_to_checkpoint", "tasks_delete_counted"];
    for (const trigger of results) {
      if (bookkeeping.includes(trigger.name)) {
        expect(trigger.sql, trigger.name).not.toMatch(/RAISE/i);
        continue;
      }
      const raised = /RAISE\s*\(\s*ABORT\s*,\s*'([^']*)'/i.exec(trigger.sql)?.[1];
      expect(raised, trigger.name).toMatch(/^\w+$/);
      expect(RAISED_NAMES as readonly string[], trigger.name).toContain(raised);
    }
  });
});

describe("refusals from real D1 errors", () => {
  it("a named CHECK becomes its refusal; other failures propagate", async () => {
    const tenant = `t_constraints_${crypto.randomUUID()}`;
    await env.DB.prepare("INSERT INTO tenants (id, name, created_at) VALUES (?1, 'c', 0)").bind(tenant).run();
    const debit = env.DB.prepare("UPDATE tenants SET balance = balance - 1 WHERE id = ?1").bind(tenant).run();
    expect(await refusedOr(debit, ["balance_nonnegative"])).toEqual({ refused: "balance_nonnegative" });
    const other = env.DB.prepare("UPDATE tenants SET balance = balance - 1 WHERE id = ?1").bind(tenant).run();
    await expect(refusedOr(other, ["tenant_inflight_cap"])).rejects.toThrow(/balance_nonnegative/);
    await env.DB.prepare(
      "INSERT INTO ledger (tenant_id, kind, amount, balance_after, reason, created_at) VALUES (?1, 'topup', 1, 1, 'x', 0)",
    )
      .bind(tenant)
      .run();
    await expect(
      env.DB.prepare("DELETE FROM ledger WHERE tenant_id = ?1").bind(tenant).run(),
    ).rejects.toSatisfy((error) => refusalOf(error) === "ledger_append_only");
  });

  it("D1's load shedding is recognised here, not by callers", () => {
    expect(isDatabaseBusy(new Error("D1 DB is overloaded. Requests queued for too long."))).toBe(true);
    expect(isDatabaseBusy(new Error("D1_ERROR: CHECK constraint failed: rate_limit"))).toBe(false);
  });
});
