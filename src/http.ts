import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { isDatabaseBusy } from "./db/constraints";
import type { KeyPrincipal } from "./db/tenants";
import { ERROR_CODES, type ErrorKind, WIRE_CODES, wireCodeOf } from "./domain/error-codes";
import { ApiError } from "./domain/errors";
import type { Env } from "./env";

/** Who may read which streams: a sub-key sees all its tenant's tasks, a stream token maybe fewer. */
export interface StreamScope {
  tenantId: string;
  taskIds: string[] | null;
  corsOrigins: string[];
  /** The sub-key behind the stream (the request's, or the one that minted its token); null for operator tokens. */
  keyId: string | null;
}

export interface AppVariables {
  requestId: string;
  principal: KeyPrincipal;
  scope: StreamScope;
  /** For logs: which task a request was about, once known. */
  taskId: string;
}

export type AppEnv = { Bindings: Env; Variables: AppVariables };
export type AppContext = Context<AppEnv>;

/** The first zod issue, named by its field path, becomes the one error shape's 400. */
export function validationError(error: z.ZodError): ApiError {
  const issue = error.issues[0];
  const field = issue?.path.length ? issue.path.join(".") : undefined;
  let message = issue?.message ?? "invalid request";
  if (issue?.code === "unrecognized_keys") {
    const keys = (issue as { keys?: string[] }).keys ?? [];
    return new ApiError("invalid_request", `unknown field ${keys.map((k) => `'${k}'`).join(", ")}`, {
      field: keys[0],
    });
  }
  if (issue?.code === "invalid_type" && /received undefined/.test(message)) message = "is required";
  return new ApiError("invalid_request", field ? `${field}: ${message}` : message, { field });
}

export function createRouter() {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw validationError(result.error);
    },
  });
}

export function errorResponse(c: AppContext, error: ApiError): Response {
  const response = c.json(error.toBody(c.get("requestId") ?? "unknown"), error.status);
  for (const [name, value] of Object.entries(error.options.headers ?? {})) response.headers.set(name, value);
  return response;
}

export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof z.ZodError) return validationError(error);
  if (error instanceof HTTPException) {
    if (error.status === 400) return new ApiError("invalid_json", "the request body must be valid JSON");
    if (error.status === 413)
      return new ApiError("payload_too_large", "body: the request body is too large", { field: "body" });
    // @hono/zod-openapi answers a body under another (or no) Content-Type with a 415, which
    // has no place in the one error shape (no `type`): it is a 400 that names the header.
    if (error.status === 415) {
      return new ApiError("invalid_request", "content-type: the request body must be application/json", {
        field: "content-type",
      });
    }
    // Any other status would fall outside the one error shape too.
    if (error.status >= 500) return new ApiError("internal_error", "the gateway hit an unexpected error");
    return new ApiError("invalid_request", error.message || "invalid request");
  }
  if (isDatabaseBusy(error)) {
    return new ApiError("database_busy", "the gateway is busy; try again shortly", {
      headers: { "Retry-After": "1" },
    });
  }
  return new ApiError("internal_error", "the gateway hit an unexpected error");
}

/** Every code with its status and meaning, generated from the one table (markdown in the spec). */
const CODE_DESCRIPTIONS = Object.entries(ERROR_CODES)
  .map(([kind, entry]) => `- \`${wireCodeOf(kind as ErrorKind)}\` (${entry.status}): ${entry.description}`)
  .join("\n");

/** The error shape as an OpenAPI schema, shared by every route's error responses. */
export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.enum(WIRE_CODES).openapi({ example: "insufficient_balance", description: CODE_DESCRIPTIONS }),
      message: z.string(),
      type: z.string(),
      request_id: z.string(),
      field: z.string().optional(),
    }),
  })
  .openapi("Error");

export const errorResponses = (...statuses: number[]) =>
  Object.fromEntries(
    statuses.map((status) => [
      status,
      {
        description: ERROR_DESCRIPTIONS[status] ?? "error",
        content: { "application/json": { schema: ErrorSchema } },
      },
    ]),
  );

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: "invalid request (the message names the field)",
  401: "missing, unknown, revoked or expired credentials",
  402: "insufficient balance or key budget exceeded",
  403: "not allowed",
  404: "not found",
  409: "conflict with the task's state",
  413: "the request body is larger than the gateway accepts",
  422: "idempotency key reused with another body",
  429: "rate limited or too many tasks in flight",
  502: "the upstream failed",
  504: "the upstream timed out",
};
