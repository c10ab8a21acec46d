import { ApiError } from "../domain/errors";
import type { TaskStatus } from "../domain/task-machine";
import { STATUSES } from "../domain/task-machine";

/**
 * The upstream client: the only code that holds the upstream key. It never throws on
 * upstream trouble; every call returns a typed failure the caller can decide about.
 */
export type UpstreamFailure =
  | { kind: "rejected"; status: number; message: string }
  | { kind: "auth"; status: number; message: string }
  | { kind: "not_found"; message: string }
  | { kind: "rate_limited"; retryAfterSeconds: number | null; message: string }
  | { kind: "server_error"; status: number; message: string }
  | { kind: "timeout"; message: string }
  | { kind: "bad_response"; status: number; message: string }
  | { kind: "network"; message: string };

export type UpstreamResult<T> = { ok: true; value: T } | { ok: false; failure: UpstreamFailure };

export interface UpstreamSubmitted {
  taskId: string;
  status: "submitted" | "modal";
  /** Every task of the answer's `data`, in the upstream's order (several with `repeat`). */
  tasks: Array<{ taskId: string; status: "submitted" | "modal" }>;
}

/**
 * A failure after which the upstream may still have run the job: the request was sent and
 * no clear answer came back. Such a submit is never retried elsewhere, and a /modal that
 * failed this way is decided by polling, not guessed.
 */
export function isAmbiguous(failure: UpstreamFailure): boolean {
  return (
    failure.kind === "timeout" ||
    failure.kind === "server_error" ||
    failure.kind === "bad_response" ||
    failure.kind === "network"
  );
}

/** A request body already serialized (or streamed) by the caller: large bodies are never re-encoded here. */
export type RequestBody = string | ReadableStream<Uint8Array>;

/** The upstream's task object, as far as we rely on it; everything else passes through. */
export interface UpstreamTask {
  id: string;
  status: TaskStatus;
  progress: number;
  failReason: string | null;
  /** The upstream's reported `cost` (USD) in micro-USD, when it gave a number. */
  costMicros: number | null;
  raw: Record<string, unknown>;
}

export interface UpstreamOptions {
  baseUrl: string;
  apiKey: string;
  timeoutMs: number;
  fetcher?: typeof fetch;
}

export class UpstreamClient {
  constructor(private readonly options: UpstreamOptions) {}

  async submit(
    action: string,
    body: Record<string, unknown> | RequestBody,
  ): Promise<UpstreamResult<UpstreamSubmitted>> {
    const serialized =
      typeof body === "string" || body instanceof ReadableStream ? body : JSON.stringify(body);
    const response = await this.call("POST", `/v1/midjourney/generations/${action}`, serialized);
    if (!response.ok) return response;
    const parsed = parseSubmitted(response.value);
    return parsed
      ? { ok: true, value: parsed }
      : {
          ok: false,
          failure: { kind: "bad_response", status: 200, message: "submit answer had no task_id" },
        };
  }

  async query(upstreamTaskId: string): Promise<UpstreamResult<UpstreamTask>> {
    const response = await this.call("GET", `/v1/midjourney/${encodeURIComponent(upstreamTaskId)}`);
    if (!response.ok) return response;
    const parsed = parseTask(response.value);
    return parsed
      ? { ok: true, value: parsed }
      : {
          ok: false,
          failure: { kind: "bad_response", status: 200, message: "task object had no known status" },
        };
  }

  private async call(method: string, path: string, body?: RequestBody): Promise<UpstreamResult<unknown>> {
    const fetcher = this.options.fetcher ?? fetch;
    let response: Response;
    try {
      response = await fetcher(`${this.options.baseUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.options.apiKey}`,
          ...(body ? { "content-type": "application/json" } : {}),
          accept: "application/json",
        },
        body,
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (error) {
      const name = error instanceof Error ? error.name : "";
      if (name === "TimeoutError" || name === "AbortError") {
        return fail({
          kind: "timeout",
          message: `upstream did not answer within ${this.options.timeoutMs} ms`,
        });
      }
      return fail({ kind: "network", message: "upstream could not be reached" });
    }
    let text: string;
    try {
      text = await response.text();
    } catch {
      return fail({ kind: "timeout", message: "upstream stopped sending its answer" });
    }
    const json = tryParseJson(text);
    if (response.ok) {
      return json === undefined
        ? fail({
            kind: "bad_response",
            status: response.status,
            message: "upstream answered with a body that is not JSON",
          })
        : { ok: true, value: json };
    }
    return fail(withoutKey(classifyError(response, json), this.options.apiKey));
  }
}

/** Upstream messages reach tenants: whatever the upstream (or a proxy) echoes, its key is cut out. */
function withoutKey(failure: UpstreamFailure, apiKey: string): UpstreamFailure {
  if (!apiKey || !failure.message.includes(apiKey)) return failure;
  return { ...failure, message: failure.message.split(apiKey).join("[redacted]") };
}

const fail = (failure: UpstreamFailure): { ok: false; failure: UpstreamFailure } => ({ ok: false, failure });

function tryParseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Reads an upstream error tolerantly: error.message, message or description; code as number or string. */
export function upstreamErrorMessage(json: unknown): string | null {
  if (!json || typeof json !== "object") return null;
  const record = json as Record<string, unknown>;
  const nested = record.error;
  if (nested && typeof nested === "object") {
    const message = (nested as Record<string, unknown>).message;
    if (typeof message === "string" && message) return message;
  }
  if (typeof nested === "string" && nested) return nested;
  for (const field of ["message", "description", "detail"]) {
    const value = record[field];
    if (typeof value === "string" && value) return value;
  }
  return null;
}

function classifyError(response: Response, json: unknown): UpstreamFailure {
  const status = response.status;
  const message = upstreamErrorMessage(json);
  if (status === 429) {
    const retryAfter = Number(response.headers.get("retry-after"));
    return {
      kind: "rate_limited",
      retryAfterSeconds: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null,
      message: message ?? "upstream is rate limiting the gateway",
    };
  }
  if (status === 401 || status === 403) {
    return { kind: "auth", status, message: message ?? "upstream refused the request" };
  }
  if (status === 404) return { kind: "not_found", message: message ?? "upstream task not found" };
  if (status >= 400 && status < 500) {
    return message
      ? { kind: "rejected", status, message }
      : {
          kind: "bad_response",
          status,
          message: `upstream answered HTTP ${status} without a readable error`,
        };
  }
  return {
    kind: json === undefined ? "bad_response" : "server_error",
    status,
    message: message ?? `upstream answered HTTP ${status}`,
  };
}

function parseSubmitted(json: unknown): UpstreamSubmitted | null {
  const data = (json as { data?: unknown })?.data;
  const entries = Array.isArray(data) ? data : [data];
  const tasks: UpstreamSubmitted["tasks"] = [];
  for (const entry of entries) {
    if (!entry || typeof entry !== "object") continue;
    const taskId = (entry as Record<string, unknown>).task_id ?? (entry as Record<string, unknown>).id;
    if (typeof taskId !== "string" || !taskId) continue;
    const status = String((entry as Record<string, unknown>).status ?? "submitted").toLowerCase();
    tasks.push({ taskId, status: status === "modal" ? "modal" : "submitted" });
  }
  const first = tasks[0];
  return first ? { ...first, tasks } : null;
}

/** USD as the upstream reports it → integer micro-USD (rounded: the upstream's floats are not exact). */
function costMicrosOf(value: unknown): number | null {
  const usd = typeof value === "string" ? Number(value) : value;
  return typeof usd === "number" && Number.isFinite(usd) && usd >= 0 ? Math.round(usd * 1_000_000) : null;
}

export function parseTask(json: unknown): UpstreamTask | null {
  if (!json || typeof json !== "object") return null;
  const raw = json as Record<string, unknown>;
  const status = String(raw.status ?? "").toUpperCase();
  if (!(STATUSES as readonly string[]).includes(status)) return null;
  const progress = Number.parseInt(String(raw.progress ?? "0").replace("%", ""), 10);
  return {
    id: String(raw.id ?? ""),
    status: status as TaskStatus,
    progress: Number.isFinite(progress) ? progress : 0,
    failReason: typeof raw.fail_reason === "string" && raw.fail_reason ? raw.fail_reason : null,
    costMicros: costMicrosOf(raw.cost),
    raw,
  };
}

/** How an upstream failure at submit time reaches the tenant, in our one error shape. */
export function apiErrorForUpstream(failure: UpstreamFailure): ApiError {
  switch (failure.kind) {
    case "rejected":
      return new ApiError(
        failure.status === 422 ? "upstream_unprocessable" : "upstream_rejected",
        failure.message,
      );
    case "not_found":
      return new ApiError("task_not_found", failure.message);
    case "rate_limited":
      return new ApiError("upstream_rate_limited", "the upstream is busy; try again shortly", {
        headers: { "Retry-After": String(failure.retryAfterSeconds ?? 5) },
      });
    case "auth":
      return new ApiError("upstream_error", "the upstream refused the gateway's credentials");
    case "server_error":
      return new ApiError("upstream_error", `the upstream failed: ${failure.message}`);
    case "bad_response":
      return new ApiError(
        "upstream_bad_response",
        `the upstream sent an unreadable answer: ${failure.message}`,
      );
    case "timeout":
      return new ApiError("upstream_timeout", failure.message);
    case "network":
      return new ApiError("upstream_error", failure.message);
  }
}
