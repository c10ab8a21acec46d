/**
 * The one error shape of the gateway. Every failure a client can see is an ApiError,
 * rendered as {"error":{"code","message","type","request_id"[,"field"]}} with its status.
 */
export type ErrorStatus = 400 | 401 | 402 | 403 | 404 | 409 | 413 | 422 | 429 | 500 | 502 | 503 | 504;

export type ErrorCode =
  | "invalid_request"
  | "invalid_json"
  | "payload_too_large"
  | "unknown_action"
  | "missing_api_key"
  | "invalid_api_key"
  | "key_disabled"
  | "key_revoked"
  | "key_expired"
  | "tenant_suspended"
  | "action_not_allowed"
  | "insufficient_scope"
  | "too_many_auth_failures"
  | "admin_unauthorized"
  | "stream_token_invalid"
  | "stream_token_expired"
  | "stream_token_scope"
  | "origin_not_allowed"
  | "not_found"
  | "task_not_found"
  | "parent_not_ready"
  | "modal_not_available"
  | "modal_expired"
  | "insufficient_balance"
  | "key_budget_exceeded"
  | "rate_limited"
  | "read_rate_limited"
  | "too_many_tasks"
  | "idempotency_key_reused"
  | "idempotency_in_progress"
  | "upstream_rejected"
  | "upstream_error"
  | "upstream_bad_response"
  | "upstream_timeout"
  | "upstream_rate_limited"
  | "webhook_endpoint_limit"
  | "database_busy"
  | "configuration_error"
  | "internal_error";

const TYPE_BY_STATUS: Record<ErrorStatus, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  402: "billing_error",
  403: "permission_error",
  404: "not_found_error",
  409: "conflict_error",
  413: "invalid_request_error",
  422: "invalid_request_error",
  429: "rate_limit_error",
  500: "api_error",
  502: "upstream_error",
  503: "api_error",
  504: "upstream_error",
};

export interface ErrorBody {
  error: { code: ErrorCode; message: string; type: string; request_id: string; field?: string };
}

export class ApiError extends Error {
  constructor(
    readonly status: ErrorStatus,
    readonly code: ErrorCode,
    message: string,
    readonly options: { field?: string; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = "ApiError";
  }

  toBody(requestId: string): ErrorBody {
    const error: ErrorBody["error"] = {
      code: this.code,
      message: this.message,
      type: this.code.startsWith("idempotency") ? "idempotency_error" : TYPE_BY_STATUS[this.status],
      request_id: requestId,
    };
    if (this.options.field) error.field = this.options.field;
    return { error };
  }
}

export const notFoundTask = (taskId: string) =>
  new ApiError(404, "task_not_found", `task ${taskId} not found`, { field: "task_id" });

export const notFoundTenant = (tenantId: string) =>
  new ApiError(404, "not_found", `tenant ${tenantId} not found`, { field: "tenant_id" });
