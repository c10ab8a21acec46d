/**
 * Helpers for the simulator's own tests. The simulator is one auxiliary
 * worker shared by every test file (which may run in parallel), so each test
 * uses its own random `sk-sim-` key and scopes faults, clock and time scale to it.
 */
import { env } from "cloudflare:test";
import { expect } from "vitest";

export const ORIGIN = "http://sim.test";

export interface SimResponse {
  status: number;
  headers: Headers;
  text: string;
  body: any;
}

export function newKey(): string {
  return `sk-sim-${crypto.randomUUID()}`;
}

async function toSimResponse(response: Response): Promise<SimResponse> {
  const text = await response.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: response.status, headers: response.headers, text, body };
}

/** A raw call to the simulator; `key` null sends no Authorization header. */
export async function simFetch(
  method: string,
  path: string,
  options: { key?: string | null; body?: unknown; rawBody?: string; signal?: AbortSignal } = {},
): Promise<SimResponse> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (options.key) headers.authorization = `Bearer ${options.key}`;
  const body = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const response = await env.SIMULATOR.fetch(`${ORIGIN}${path}`, {
    method,
    headers,
    body,
    signal: options.signal,
  });
  return toSimResponse(response);
}

export function submit(key: string, action: string, body: unknown): Promise<SimResponse> {
  return simFetch("POST", `/v1/midjourney/generations/${action}`, { key, body });
}

export function query(key: string, taskId: string): Promise<SimResponse> {
  return simFetch("GET", `/v1/midjourney/${taskId}`, { key });
}

export function control(method: string, path: string, body?: unknown): Promise<SimResponse> {
  return simFetch(method, `/_sim${path}`, { body });
}

/** Submit and expect acceptance; returns the new task id. */
export async function submitOk(key: string, action: string, body: unknown): Promise<string> {
  const response = await submit(key, action, body);
  expect(response.status, response.text).toBe(200);
  expect(response.body.code).toBe(200);
  const taskId = response.body.data[0].task_id;
  expect(taskId).toMatch(/^task_[0-9A-HJKMNP-TV-Z]{26}$/);
  return taskId;
}

/** The task object; SIM_TIME_SCALE is 0 in tests, so work is already done. */
export async function task(key: string, taskId: string): Promise<any> {
  const response = await query(key, taskId);
  expect(response.status, response.text).toBe(200);
  return response.body;
}

export async function expectError(
  response: SimResponse,
  status: number,
  message: string | RegExp,
  code?: number,
): Promise<void> {
  expect(response.status, response.text).toBe(status);
  expect(response.body.error).toBeTypeOf("object");
  if (typeof message === "string") expect(response.body.error.message).toContain(message);
  else expect(response.body.error.message).toMatch(message);
  expect(response.body.error.type).toBeTypeOf("string");
  if (code !== undefined) expect(response.body.error.code).toBe(code);
}

export async function imagine(
  key: string,
  prompt = "a lighthouse at dusk",
  extra: object = {},
): Promise<string> {
  return submitOk(key, "imagine", { prompt, ...extra });
}

/** A finished imagine and an upscale of its image `index`. */
export async function upscaled(key: string, index = 1): Promise<{ grid: string; upscale: string }> {
  const grid = await imagine(key);
  const upscale = await submitOk(key, "upscale", { task_id: grid, index });
  return { grid, upscale };
}

export function customIdOf(view: any, label: string): string {
  const button = view.buttons.find((b: any) => b.label === label);
  if (!button) throw new Error(`no button ${label} in ${JSON.stringify(view.buttons)}`);
  return button.customId;
}

export async function addFault(fault: Record<string, unknown>): Promise<any> {
  const response = await control("POST", "/faults", fault);
  expect(response.status, response.text).toBe(201);
  return response.body;
}
