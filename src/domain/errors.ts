import {
  ERROR_CODES,
  type ErrorCode,
  type ErrorKind,
  type ErrorStatus,
  type ErrorType,
  kindOfWire,
  wireCodeOf,
} from "./error-codes";

export type { ErrorCode, ErrorKind, ErrorStatus } from "./error-codes";

/**
 * The one error shape of the gateway. Every failure a client can see is an ApiError, raised
 * with a code of the table in ./error-codes.ts (which alone knows its HTTP status) and
 * rendered as {"error":{"code","message","type","request_id"[,"field"]}}.
 */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; type: ErrorType; request_id: string; field?: string };
}

export interface ApiErrorOptions {
  field?: string;
  headers?: Record<string, string>;
}

export class ApiError extends Error {
  /** What the client sees in `error.code`. */
  readonly code: ErrorCode;
  readonly status: ErrorStatus;

  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly options: ApiErrorOptions = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.code = wireCodeOf(kind);
    this.status = ERROR_CODES[kind].status;
  }

  /** Rebuilds an error that crossed a boundary in its wire form (status and code). */
  static fromWire(status: number, code: ErrorCode, message: string, options: ApiErrorOptions = {}): ApiError {
    return new ApiError(kindOfWire(status, code), message, options);
  }

  toBody(requestId: string): ErrorBody {
    const error: ErrorBody["error"] = {
      code: this.code,
      message: this.message,
      type: ERROR_CODES[this.kind].type,
      request_id: requestId,
    };
    if (this.options.field) error.field = this.options.field;
    return { error };
  }
}

export const notFoundTask = (taskId: string) =>
  new ApiError("task_not_found", `task ${taskId} not found`, { field: "task_id" });

export const notFoundTenant = (tenantId: string) =>
  new ApiError("not_found", `tenant ${tenantId} not found`, { field: "tenant_id" });
