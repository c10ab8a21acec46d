/**
 * Injected faults. A fault is queued through `POST /_sim/faults`, matches
 * requests by phase and optional filters (so parallel tests stay out of each
 * other's way), and is consumed in FIFO order, `count` times.
 *
 * The store picks and consumes the fault (one atomic step); the stateless
 * Worker then acts it out. Delays (slow, hang) therefore never keep the
 * Durable Object busy.
 */

import { z } from "zod";
import { apiError, serviceRejected } from "./errors";
import type { ApiResult } from "./types";

export const FAULT_TYPES = [
  "status",
  "hang",
  "slow",
  "garbage",
  "html",
  "truncated",
  "refuse",
  "cut",
  "fail_task",
] as const;
export type FaultType = (typeof FAULT_TYPES)[number];
export type FaultPhase = "submit" | "query";

const HOUR_MS = 60 * 60 * 1000;
/** A hang outlasts any sane client timeout. */
export const DEFAULT_HANG_MS = 10 * 60 * 1000;
const DEFAULT_SLOW_MS = 2000;

/** Body of `POST /_sim/faults`; strict so a typo in a test fails loudly. */
export const faultInputSchema = z.strictObject({
  type: z.enum(FAULT_TYPES),
  on: z.enum(["submit", "query", "any"]).default("any"),
  /** HTTP status for type "status" (429 gets a Retry-After header). */
  status: z.number().int().min(400).max(599).default(503),
  /** slow: delay before answering; hang: how long to hang (default 10 min). */
  delay_ms: z.number().int().min(0).max(HOUR_MS).optional(),
  /** Seconds in the Retry-After header of a 429 (default 1). */
  retry_after: z.number().int().min(0).max(3600).optional(),
  /** Matching requests it applies to; "always": every one, until the fault is cleared. */
  count: z.union([z.number().int().min(1), z.literal("always")]).default(1),
  /** fail_task: the task's fail_reason. */
  reason: z.string().optional(),
  /**
   * Whether the request is really handled before the fault answers (the
   * ambiguous "did my submit go through?" case). Default: true for
   * truncated and cut (an answer lost on the way), false for the others.
   */
  process: z.boolean().optional(),
  key: z.string().optional(),
  task_id: z.string().optional(),
  action: z.string().optional(),
  prompt_contains: z.string().optional(),
});

export type FaultInput = z.output<typeof faultInputSchema>;

export interface Fault {
  id: number;
  type: FaultType;
  on: FaultPhase | "any";
  status: number;
  delay_ms: number | null;
  retry_after: number | null;
  /** Uses left; null: applies until cleared. */
  remaining: number | null;
  reason: string | null;
  process: boolean | null;
  key: string | null;
  task_id: string | null;
  action: string | null;
  prompt_contains: string | null;
}

/** What a request is about, as far as fault filters care. */
export interface RequestFacts {
  on: FaultPhase;
  key: string;
  /** Query: the task asked about. Submit: the body's task_id (the parent). */
  taskId: string | null;
  action: string | null;
  prompt: string | null;
}

/** "HIGH_VARIATION", "high_variation" and "high-variation" all name one action. */
function sameAction(a: string, b: string): boolean {
  const norm = (s: string) => s.toLowerCase().replace(/_/g, "-");
  return norm(a) === norm(b);
}

export function faultMatches(fault: Fault, facts: RequestFacts): boolean {
  if (fault.type !== "fail_task" && fault.on !== "any" && fault.on !== facts.on) return false;
  if (fault.key !== null && fault.key !== facts.key) return false;
  if (fault.task_id !== null && fault.task_id !== facts.taskId) return false;
  if (fault.action !== null && (facts.action === null || !sameAction(fault.action, facts.action)))
    return false;
  if (fault.prompt_contains !== null && !(facts.prompt ?? "").includes(fault.prompt_contains)) return false;
  return true;
}

// ---------------------------------------------------------------------------
// Acting a fault out (Worker layer)

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const jsonHeaders = { "content-type": "application/json; charset=utf-8" };

export function resultResponse(result: ApiResult): Response {
  return new Response(JSON.stringify(result.body), {
    status: result.status,
    headers: { ...jsonHeaders, ...result.headers },
  });
}

/** Whether the request really is handled (a task made, say) before the fault answers. */
export function handlesRequest(fault: Fault): boolean {
  if (fault.type === "slow") return true;
  return fault.process ?? (fault.type === "truncated" || fault.type === "cut");
}

/**
 * Thrown out of the Worker, so the caller's fetch() rejects with it, as it does when a
 * connection is refused or drops (over a service binding or the outbound service; under
 * `wrangler dev` over real HTTP, workerd turns it into a 500 page instead).
 */
export class SimulatedConnectionFailure extends Error {
  override name = "SimulatedConnectionFailure";
}

/** Answer `handle`'s request the way `fault` says. */
export async function actOutFault(fault: Fault, handle: () => Promise<Response>): Promise<Response> {
  const handled = handlesRequest(fault);
  switch (fault.type) {
    case "slow":
      await sleep(fault.delay_ms ?? DEFAULT_SLOW_MS);
      return handle();
    case "truncated":
      return truncated(handled ? await handle() : null);
    default: {
      if (handled) await (await handle()).arrayBuffer();
      return brokenAnswer(fault);
    }
  }
}

async function brokenAnswer(fault: Fault): Promise<Response> {
  switch (fault.type) {
    case "hang":
      await sleep(fault.delay_ms ?? DEFAULT_HANG_MS);
      return new Response(proxyErrorPage(504, "Gateway Timeout"), { status: 504, headers: htmlHeaders });
    case "garbage":
      // Claims JSON, is not: what a confused proxy or a broken upstream sends.
      return new Response("OK\u0000<<simulated garbage: this is not JSON>>", {
        status: 200,
        headers: jsonHeaders,
      });
    case "html":
      return new Response(proxyErrorPage(502, "Bad Gateway"), { status: 502, headers: htmlHeaders });
    case "refuse":
      throw new SimulatedConnectionFailure("Network connection refused (simulated)");
    case "cut":
      throw new SimulatedConnectionFailure("Network connection lost (simulated)");
    default:
      return resultResponse(statusFault(fault));
  }
}

function statusFault(fault: Fault): ApiResult {
  if (fault.status === 429) {
    const result = apiError(429, 429, "Too many requests (simulated)", "rate_limit_error");
    return { ...result, headers: { "retry-after": String(fault.retry_after ?? 1) } };
  }
  if (fault.status === 502) return serviceRejected();
  return apiError(fault.status, fault.status, `simulated upstream error ${fault.status}`, "upstream_error");
}

/** Cut the real answer (or a made-up submit answer) in half: never valid JSON. */
async function truncated(real: Response | null): Promise<Response> {
  const text = real ? await real.text() : '{"code":200,"data":[{"status":"submitted","task_id":"task_01';
  const cut = text.slice(0, Math.max(1, Math.floor(text.length / 2)));
  return new Response(cut, { status: real?.status ?? 200, headers: jsonHeaders });
}

const htmlHeaders = { "content-type": "text/html; charset=utf-8" };

function proxyErrorPage(status: number, title: string): string {
  return `<!DOCTYPE html>\n<html><head><title>${status} ${title}</title></head><body><center><h1>${status} ${title}</h1></center><hr><center>cloudflare</center></body></html>\n`;
}
