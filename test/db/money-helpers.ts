/**
 * Helpers shared by the money tests (test/db, test/domain/pricing, test/routes/finance).
 * Independent oracles live here: the upstream's public list prices and a USD string parser.
 */
import { env } from "cloudflare:test";
import { expect } from "vitest";
import { admit } from "../../src/db/admission";
import { newTaskId } from "../../src/domain/ids";
import { call, driveToEnd, submit, type TenantWithKey } from "../helpers";

/** Upstream list prices in micro-USD (upstream-api.md "Billing"). */
export const LIST_IMAGINE = { relax: 45_040, fast: 55_040, turbo: 100_000 } as const;
export const LIST_OTHER = { relax: 55_040, fast: 55_040, turbo: 100_000 } as const;
export const LIST_VIDEO = { "480p": 200_000, "720p": 400_000 } as const;

/** What tenants pay with the default markup of 2000 bps (+20%), computed by hand. */
export const PRICE_IMAGINE = { relax: 54_048, fast: 66_048, turbo: 120_000 } as const;
export const PRICE_OTHER = { relax: 66_048, fast: 66_048, turbo: 120_000 } as const;
export const PRICE_VIDEO = { "480p": 240_000, "720p": 480_000 } as const;

export const IMAGE_ACTIONS_PRICED_LIKE_OTHER = [
  "edits",
  "blend",
  "describe",
  "upscale",
  "variation",
  "high-variation",
  "low-variation",
  "reroll",
  "zoom",
  "pan",
  "modal",
  "remix-strong",
  "remix-subtle",
] as const;

export const MONEY_TABLES = [
  "tenants",
  "api_keys",
  "ledger",
  "tasks",
  "key_spend",
  "rate_windows",
  "idempotency",
] as const;

/** Every row of every money table, in a stable order. */
export async function snapshot(): Promise<Record<string, unknown[]>> {
  const results = await env.DB.batch(
    MONEY_TABLES.map((t) => env.DB.prepare(`SELECT * FROM ${t} ORDER BY rowid`)),
  );
  return Object.fromEntries(MONEY_TABLES.map((t, i) => [t, results[i]!.results]));
}

/** Parses "12.345678" / "-0.000001" into integer micros with string arithmetic only. */
export function usdToMicros(text: string): number {
  const match = /^(-?)(\d+)\.(\d{6})$/.exec(text);
  if (!match) throw new Error(`not an exact 6-decimal USD string: ${text}`);
  const value = Number(match[2]) * 1_000_000 + Number(match[3]);
  return match[1] === "-" ? -value : value;
}

export const uid = () => crypto.randomUUID().slice(0, 8);

export async function row<T = Record<string, any>>(sql: string, ...params: unknown[]): Promise<T | null> {
  return env.DB.prepare(sql)
    .bind(...params)
    .first<T>();
}

export async function rows<T = Record<string, any>>(sql: string, ...params: unknown[]): Promise<T[]> {
  return (
    await env.DB.prepare(sql)
      .bind(...params)
      .all<T>()
  ).results;
}

export async function tenantRow(tenantId: string) {
  return (await row<{ balance: number; inflight: number; max_inflight: number }>(
    "SELECT balance, inflight, max_inflight FROM tenants WHERE id = ?1",
    tenantId,
  ))!;
}

export async function keyRow(keyId: string) {
  return (await row<{ inflight: number; max_inflight: number }>(
    "SELECT inflight, max_inflight FROM api_keys WHERE id = ?1",
    keyId,
  ))!;
}

export async function ledgerSum(tenantId: string): Promise<number> {
  return (await row<{ s: number }>(
    "SELECT COALESCE(SUM(amount), 0) AS s FROM ledger WHERE tenant_id = ?1",
    tenantId,
  ))!.s;
}

export async function spendRows(keyId: string) {
  return rows<{ period: string; spent: number; cap: number | null }>(
    "SELECT period, spent, cap FROM key_spend WHERE key_id = ?1 ORDER BY period",
    keyId,
  );
}

/** Scopes a simulator fault to this test only (the simulator is shared by every test file). */
export async function addFault(fault: Record<string, unknown>) {
  const created = await sim("POST", "/_sim/faults", fault);
  if (!created || typeof created !== "object" || !("id" in created)) {
    throw new Error(`fault not created: ${JSON.stringify(created)}`);
  }
  return created;
}

async function sim(method: string, path: string, body?: unknown) {
  const response = await env.SIMULATOR.fetch(`http://upstream.test${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return response.json() as Promise<Record<string, unknown>>;
}

export function taskIdOf(response: { status: number; body: any }): string {
  if (response.status !== 200)
    throw new Error(`submit failed: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body.data[0].task_id as string;
}

/**
 * Drives a task to its end and waits until D1 has recorded its settlement: a real alarm
 * may have published the terminal status while its settlement batch is still running.
 */
export async function finish(taskId: string, key: string) {
  const view = await driveToEnd(taskId, key);
  for (let i = 0; i < 200; i++) {
    const task = await row<{ settled_at: number | null }>(
      "SELECT settled_at FROM tasks WHERE id = ?1",
      taskId,
    );
    if (task?.settled_at) return view;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`task ${taskId} ended as ${view.status} but was never settled in D1`);
}

/** imagine → SUCCESS → upscale U1 → SUCCESS: a parent for zoom, pan and inpaint. Costs 54048 + 66048. */
export async function upscaledParent(t: TenantWithKey, prompt = `parent ${uid()}`) {
  const grid = taskIdOf(await submit(t.key, "imagine", { prompt }));
  expect((await finish(grid, t.key)).status).toBe("SUCCESS");
  const up = taskIdOf(await submit(t.key, "upscale", { task_id: grid, index: 1 }));
  expect((await finish(up, t.key)).status).toBe("SUCCESS");
  return { grid, upscaled: up };
}

/**
 * An inpaint task waits in MODAL for 30 min and is polled only every 30 s: a stable,
 * free way to hold an in-flight slot while real alarms run in the background.
 */
export async function holdSlot(key: string, upscaledTaskId: string, headers: Record<string, string> = {}) {
  const res = await submit(key, "inpaint", { task_id: upscaledTaskId }, headers);
  return res;
}

/**
 * Rate windows are aligned to the minute: wait for a fresh window when less than
 * `needMs` of the current one is left, so a test's requests share one window.
 */
export async function freshRateWindow(needMs = 15_000): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < needMs) await new Promise((resolve) => setTimeout(resolve, left + 50));
}

export async function admin(method: string, path: string, body?: unknown) {
  return call(method, path, { admin: true, body });
}

export function countBy<T>(items: T[], key: (item: T) => string | number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) {
    const k = String(key(item));
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

/** Minimal RFC 4180 parser (quoted cells, doubled quotes, CRLF inside quotes). */
export function parseCsv(text: string): string[][] {
  const out: string[][] = [];
  let rowCells: string[] = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") {
      rowCells.push(cell);
      cell = "";
    } else if (ch === "\r" && text[i + 1] === "\n") {
      rowCells.push(cell);
      out.push(rowCells);
      rowCells = [];
      cell = "";
      i++;
    } else cell += ch;
  }
  if (cell !== "" || rowCells.length) {
    rowCells.push(cell);
    out.push(rowCells);
  }
  return out;
}

/** A charged, open imagine task written by the real admission batch, with no Durable Object behind it. */
export async function admittedTask(
  t: Pick<TenantWithKey, "tenantId" | "keyId">,
  cost = 54_048,
  at = Date.now(),
): Promise<string> {
  const taskId = newTaskId();
  await admit(env.DB, {
    tenantId: t.tenantId,
    keyId: t.keyId,
    taskId,
    action: "imagine",
    parentTaskId: null,
    costMicros: cost,
    kind: "new_task",
    idempotency: null,
    at,
  });
  return taskId;
}
