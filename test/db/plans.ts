/**
 * EXPLAIN QUERY PLAN for the statements the code really runs: a D1 binding that records
 * every statement prepared and bound through it (and runs it for real), then the plan of
 * each recorded statement.
 */
import { env } from "cloudflare:test";
import { expect } from "vitest";

export interface Recorded {
  sql: string;
  params: unknown[];
}

export function recordingDb(db: D1Database = env.DB): { db: D1Database; statements: Recorded[] } {
  const statements: Recorded[] = [];
  const proxy = new Proxy(db, {
    get(target, property) {
      if (property === "prepare") {
        return (sql: string) => {
          const entry: Recorded = { sql, params: [] };
          statements.push(entry);
          const statement = target.prepare(sql);
          return new Proxy(statement, {
            get(s, p) {
              if (p === "bind") {
                return (...values: unknown[]) => {
                  entry.params = values;
                  return s.bind(...values);
                };
              }
              const value = Reflect.get(s, p, s);
              return typeof value === "function" ? value.bind(s) : value;
            },
          });
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { db: proxy, statements };
}

/** The plan's detail lines, e.g. "SEARCH ledger USING INDEX ledger_by_time (created_at>? AND created_at<?)". */
export async function planOf(statement: Recorded): Promise<string[]> {
  const { results } = await env.DB.prepare(`EXPLAIN QUERY PLAN ${statement.sql}`)
    .bind(...statement.params)
    .all<{ detail: string }>();
  return results.map((r) => r.detail);
}

/**
 * Fails on any plan line that scans one of the tables `scan` names (e.g. /^SCAN (ledger|tasks)\b/),
 * naming the statement and its plan; an empty recording fails too, so a test cannot pass by
 * recording nothing.
 */
export async function expectNoScans(statements: Recorded[], scan: RegExp): Promise<void> {
  expect(statements.length).toBeGreaterThan(0);
  for (const statement of statements) {
    const plan = await planOf(statement);
    expect(
      plan.filter((line) => scan.test(line)),
      `${statement.sql}\n${plan.join("\n")}`,
    ).toEqual([]);
  }
}
