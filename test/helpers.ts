import { env, SELF } from "cloudflare:test";
import { runAlarmWhenDue } from "./durable/clock-helpers";

export const ADMIN = { authorization: "Bearer test-admin-token", "content-type": "application/json" };
const BASE = "http://gateway.test";

export async function call(
  method: string,
  path: string,
  options: { key?: string; admin?: boolean; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  if (options.admin) Object.assign(headers, ADMIN);
  if (options.key) headers.authorization = `Bearer ${options.key}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const response = await SELF.fetch(`${BASE}${path}`, {
    method,
    headers,
    body:
      options.body === undefined
        ? undefined
        : typeof options.body === "string"
          ? options.body
          : JSON.stringify(options.body),
  });
  const text = await response.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: response.status, body, headers: response.headers };
}

export interface TenantWithKey {
  tenantId: string;
  keyId: string;
  key: string;
}

/** A fresh tenant with one key and, if asked, a balance. */
export async function tenantWithKey(
  balanceMicros = 10_000_000,
  keyOptions: Record<string, unknown> = {},
  tenantOptions: Record<string, unknown> = {},
): Promise<TenantWithKey> {
  const tenant = await call("POST", "/admin/tenants", {
    admin: true,
    body: { name: `t-${crypto.randomUUID()}`, ...tenantOptions },
  });
  if (tenant.status !== 201) throw new Error(`tenant: ${JSON.stringify(tenant.body)}`);
  const key = await call("POST", `/admin/tenants/${tenant.body.id}/keys`, {
    admin: true,
    body: { name: "server", rpm_limit: 10_000, max_inflight: 10_000, ...keyOptions },
  });
  if (key.status !== 201) throw new Error(`key: ${JSON.stringify(key.body)}`);
  if (balanceMicros > 0) {
    const topup = await call("POST", `/admin/tenants/${tenant.body.id}/topups`, {
      admin: true,
      body: { amount_micros: balanceMicros, reason: "test funds" },
    });
    if (topup.status !== 201) throw new Error(`topup: ${JSON.stringify(topup.body)}`);
  }
  return { tenantId: tenant.body.id, keyId: key.body.id, key: key.body.key };
}

export async function submit(
  key: string,
  action: string,
  body: unknown,
  headers: Record<string, string> = {},
) {
  return call("POST", `/v1/midjourney/generations/${action}`, { key, body, headers });
}

export const taskStub = (taskId: string) => env.TASKS.get(env.TASKS.idFromName(taskId));

/** Drives a task's alarms (never real timers) until it reaches a terminal state. */
export async function driveToEnd(taskId: string, key: string, maxAlarms = 20) {
  // Only alarms that really ran count: while a real background alarm runs, none is pending.
  for (let ran = 0, tries = 0; ran < maxAlarms && tries < maxAlarms * 20; tries++) {
    const view = await call("GET", `/v1/midjourney/${taskId}`, { key });
    if (["SUCCESS", "FAILURE", "CANCEL"].includes(view.body.status)) return view.body;
    if (await runAlarmWhenDue(taskStub(taskId))) ran++;
    else await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`task ${taskId} did not finish after ${maxAlarms} alarms`);
}

/**
 * Drives a task's alarms until D1 has a refund row for `step` (an ambiguous /modal decided
 * by polling: the upstream kept saying MODAL). Test alarms jump to their armed time.
 */
export async function driveUntilStepRefunded(taskId: string, step: string, maxAlarms = 20) {
  for (let ran = 0, tries = 0; ran < maxAlarms && tries < maxAlarms * 20; tries++) {
    const refund = await env.DB.prepare(
      "SELECT 1 AS found FROM ledger WHERE task_id = ?1 AND step = ?2 AND kind = 'refund'",
    )
      .bind(taskId, step)
      .first();
    if (refund) return;
    if (await runAlarmWhenDue(taskStub(taskId))) ran++;
    else await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`task ${taskId}'s step ${step} was not refunded after ${maxAlarms} alarms`);
}

export async function balanceOf(tenantId: string): Promise<number> {
  const row = await env.DB.prepare("SELECT balance FROM tenants WHERE id = ?1")
    .bind(tenantId)
    .first<{ balance: number }>();
  return row!.balance;
}

export async function ledgerOf(tenantId: string) {
  const { results } = await env.DB.prepare("SELECT * FROM ledger WHERE tenant_id = ?1 ORDER BY id")
    .bind(tenantId)
    .all<any>();
  return results;
}

export async function reconciliation() {
  return (await call("GET", "/admin/reconciliation", { admin: true })).body;
}

/** Control API of the simulator (shared by all test files: scope faults with filters). */
export async function sim(method: string, path: string, body?: unknown) {
  const response = await env.SIMULATOR.fetch(`http://upstream.test${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * Waits until every task of this test file has settled in D1, so that no real alarm is
 * still polling when the file's runtime is torn down (for files that leave tasks running).
 */
export async function untilAllTasksSettle(timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const open = await env.DB.prepare("SELECT COUNT(*) AS n FROM tasks WHERE settled_at IS NULL").first<{
      n: number;
    }>();
    if (!open?.n || Date.now() > until) return open?.n ?? 0;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
