/**
 * Helpers shared by test/routes and test/upstream: exact response shapes, D1 lookups
 * (tasks, ledger, prices) and ready-made parents. D1 is isolated per test file, the
 * simulator is not: every fault injected here must be scoped by a unique filter.
 */
import { env } from "cloudflare:test";
import { expect } from "vitest";
import { call, driveToEnd, sim, submit, type TenantWithKey } from "../helpers";

/** The gateway's upstream key in tests (vitest.config.ts): it must never reach a tenant. */
export const TEST_UPSTREAM_KEY = "sk-sim-gateway-tests";

export const TASK_ID = /^task_[0-9A-HJKMNP-TV-Z]{26}$/;
export const PROGRESS = /^(\d|[1-9]\d|100)%$/;
export const BASE_URL = "https://example.com/in.png";

/** A marker no other test (or file) uses, for prompts and fault filters. */
export const marker = (label = "m") => `${label}-${crypto.randomUUID()}`;

type Res = { status: number; body: any; headers: Headers };

/** The exact submit answer: {"code":200,"data":[{"status":...,"task_id":"task_<ULID>"}]}. Returns the id. */
export function expectSubmitted(res: Res, status: "submitted" | "modal" = "submitted"): string {
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(Object.keys(res.body).sort()).toEqual(["code", "data"]);
  expect(res.body.code).toBe(200);
  expect(res.body.data).toHaveLength(1);
  expect(Object.keys(res.body.data[0]).sort()).toEqual(["status", "task_id"]);
  expect(res.body.data[0].status).toBe(status);
  expect(res.body.data[0].task_id).toMatch(TASK_ID);
  return res.body.data[0].task_id;
}

/** The one error shape, with the status and code expected; returns the error object. */
export function expectError(res: Res, status: number, code: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(typeof res.body, String(res.body)).toBe("object");
  expect(Object.keys(res.body)).toEqual(["error"]);
  const error = res.body.error;
  expect(error.code).toBe(code);
  expect(typeof error.message).toBe("string");
  expect(error.message.length).toBeGreaterThan(0);
  expect(typeof error.type).toBe("string");
  expect(error.request_id).toMatch(/^req_[0-9A-Z]{26}$/);
  for (const k of Object.keys(error)) expect(["code", "message", "type", "request_id", "field"]).toContain(k);
  expect(res.headers.get("content-type") ?? "").toMatch(/application\/json/);
  return error as { code: string; message: string; type: string; request_id: string; field?: string };
}

export async function tasksOf(tenantId: string) {
  const { results } = await env.DB.prepare("SELECT * FROM tasks WHERE tenant_id = ?1 ORDER BY created_at, id")
    .bind(tenantId)
    .all<any>();
  return results;
}

export async function taskRow(taskId: string) {
  return env.DB.prepare("SELECT * FROM tasks WHERE id = ?1").bind(taskId).first<any>();
}

export async function ledgerOfTask(taskId: string) {
  const { results } = await env.DB.prepare("SELECT * FROM ledger WHERE task_id = ?1 ORDER BY id")
    .bind(taskId)
    .all<any>();
  return results;
}

export async function keyRow(keyId: string) {
  return env.DB.prepare("SELECT * FROM api_keys WHERE id = ?1").bind(keyId).first<any>();
}

export async function tenantRow(tenantId: string) {
  return env.DB.prepare("SELECT * FROM tenants WHERE id = ?1").bind(tenantId).first<any>();
}

/** Everything a tenant has that a refused request could have written. */
export async function footprint(t: TenantWithKey) {
  const tenant = await tenantRow(t.tenantId);
  const key = await keyRow(t.keyId);
  const { results: ledger } = await env.DB.prepare("SELECT * FROM ledger WHERE tenant_id = ?1 ORDER BY id")
    .bind(t.tenantId)
    .all<any>();
  const { results: spend } = await env.DB.prepare("SELECT * FROM key_spend WHERE key_id = ?1")
    .bind(t.keyId)
    .all<any>();
  const { results: idem } = await env.DB.prepare("SELECT * FROM idempotency WHERE tenant_id = ?1")
    .bind(t.tenantId)
    .all<any>();
  return {
    balance: tenant.balance as number,
    tenantInflight: tenant.inflight as number,
    keyInflight: key.inflight as number,
    tasks: await tasksOf(t.tenantId),
    ledger,
    spend: spend.map((r: any) => r.spent as number),
    idempotency: idem,
  };
}

/** Nothing was written: no task, no charge/refund, balance, in-flight and spend unchanged. */
export async function expectNothingWritten(t: TenantWithKey, before: Awaited<ReturnType<typeof footprint>>) {
  const after = await footprint(t);
  expect(after.tasks).toEqual([]);
  expect(after.ledger.filter((r: any) => r.kind !== "topup")).toEqual([]);
  expect(after.balance).toBe(before.balance);
  expect(after.tenantInflight).toBe(before.tenantInflight);
  expect(after.keyInflight).toBe(before.keyInflight);
  expect(after.spend).toEqual(before.spend);
  expect(after.idempotency).toEqual(before.idempotency);
}

/**
 * What a tenant pays for one unit, computed independently of src/: the D1 price row
 * (override, else list + markup, rounded half up) times the tenant's multiplier.
 */
export async function unitPrice(
  tenantId: string,
  action: string,
  speed: "" | "relax" | "fast" | "turbo" = "relax",
  resolution: "" | "480p" | "720p" = "",
): Promise<number> {
  const row = await env.DB.prepare(
    "SELECT list_micros, override_micros FROM prices WHERE action = ?1 AND speed = ?2 AND resolution = ?3",
  )
    .bind(action, action === "video" ? "" : speed, resolution)
    .first<{ list_micros: number; override_micros: number | null }>();
  if (!row) throw new Error(`no price row for ${action}/${speed}/${resolution}`);
  const markup = await env.DB.prepare("SELECT value FROM settings WHERE name = 'markup_bps'").first<{
    value: string;
  }>();
  const base =
    row.override_micros ??
    Math.round((row.list_micros * (10_000 + Number(markup?.value ?? 0))) / 10_000 + Number.EPSILON);
  const tenant = await tenantRow(tenantId);
  return Math.round((base * tenant.price_multiplier_bps) / 10_000 + Number.EPSILON);
}

/** The simulator's view of the gateway's tasks (all files share that key: filter on your own ids). */
export async function simTasks(): Promise<
  Array<{ id: string; action: string; status: string; prompt: string }>
> {
  return sim("GET", `/_sim/tasks?key=${encodeURIComponent(TEST_UPSTREAM_KEY)}`);
}

/** Queue a fault on the shared simulator; the filter MUST be unique to the calling test. */
export async function fault(spec: Record<string, unknown>) {
  if (!spec.prompt_contains && !spec.task_id)
    throw new Error("scope every fault with prompt_contains or task_id");
  const created = await sim("POST", "/_sim/faults", { key: TEST_UPSTREAM_KEY, ...spec });
  if (typeof created?.id !== "number") throw new Error(`fault not created: ${JSON.stringify(created)}`);
  return created as { id: number };
}

/** Is that fault still queued (i.e. never matched by a request)? */
export async function faultPending(id: number): Promise<boolean> {
  const faults: Array<{ id: number }> = await sim(
    "GET",
    `/_sim/faults?key=${encodeURIComponent(TEST_UPSTREAM_KEY)}`,
  );
  return faults.some((f) => f.id === id);
}

/** Submit, check the answer, drive the task to its end; returns the final view. */
export async function submitAndFinish(key: string, action: string, body: unknown) {
  const id = expectSubmitted(await submit(key, action, body));
  const view = await driveToEnd(id, key);
  return { id, view };
}

/** A SUCCESS imagine grid. */
export async function gridParent(key: string, extra: Record<string, unknown> = {}) {
  const { id, view } = await submitAndFinish(key, "imagine", { prompt: marker("grid"), ...extra });
  expect(view.status, JSON.stringify(view)).toBe("SUCCESS");
  return { id, view };
}

/** A SUCCESS upscaled image (imagine → upscale). */
export async function upscaledParent(key: string) {
  const grid = await gridParent(key);
  const { id, view } = await submitAndFinish(key, "upscale", { task_id: grid.id, index: 1 });
  expect(view.status, JSON.stringify(view)).toBe("SUCCESS");
  return { id, view, gridId: grid.id };
}

/** The upstream's id for one of our tasks, once it has been settled. */
export async function upstreamIdOf(taskId: string): Promise<string> {
  const row = await taskRow(taskId);
  expect(row?.upstream_task_id, `tasks row of ${taskId}: ${JSON.stringify(row)}`).toMatch(TASK_ID);
  return row.upstream_task_id as string;
}

/** Every refund of a failed submit: exactly one charge and one refund that points at it. */
export async function expectRefunded(taskId: string, cost: number, balanceBefore: number, tenantId: string) {
  const rows = await ledgerOfTask(taskId);
  const charge = rows.find((r: any) => r.kind === "charge");
  const refund = rows.find((r: any) => r.kind === "refund");
  expect(rows.map((r: any) => r.kind)).toEqual(["charge", "refund"]);
  expect(charge.amount).toBe(-cost);
  expect(charge.balance_after).toBe(balanceBefore - cost);
  expect(refund.amount).toBe(cost);
  expect(refund.ref_id).toBe(charge.id);
  expect(refund.tenant_id).toBe(tenantId);
  expect(refund.balance_after).toBe(balanceBefore);
  expect((await tenantRow(tenantId)).balance).toBe(balanceBefore);
  const task = await taskRow(taskId);
  expect(task.status).toBe("FAILURE");
  expect(task.settled_at).not.toBeNull();
  return { charge, refund, task };
}

/** The upstream key appears nowhere in a response: not in its body, not in its headers. */
export function expectNoUpstreamKey(res: Res) {
  const text = typeof res.body === "string" ? res.body : JSON.stringify(res.body);
  expect(text).not.toContain(TEST_UPSTREAM_KEY);
  for (const [name, value] of res.headers) {
    expect(`${name}: ${value}`).not.toContain(TEST_UPSTREAM_KEY);
  }
}

export const get = (key: string, id: string) => call("GET", `/v1/midjourney/${id}`, { key });
export const getUnified = (key: string, id: string) => call("GET", `/v1/tasks/${id}`, { key });
