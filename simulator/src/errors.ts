/**
 * Error bodies in the upstream's (partly assumed) shape:
 * {"error":{"code":<number>,"message":"...","type":"..."}}.
 * `code` follows the documented MJ codes where they exist (4 bad request,
 * 3 not found, 9 service rejected) and the HTTP status otherwise.
 */

import type { ApiResult } from "./types";

export function apiError(status: number, code: number, message: string, type: string): ApiResult {
  return { status, body: { error: { code, message, type } } };
}

export function badRequest(message: string): ApiResult {
  return apiError(400, 4, message, "invalid_request_error");
}

export function taskNotFound(taskId: string): ApiResult {
  return apiError(404, 3, `task ${taskId} not found`, "invalid_request_error");
}

export function notYourTask(taskId: string): ApiResult {
  return apiError(403, 403, `task ${taskId} belongs to another API key`, "permission_error");
}

export function unauthorized(message: string): ApiResult {
  return apiError(401, 401, message, "authentication_error");
}

export function serviceRejected(message = "Service rejected"): ApiResult {
  return apiError(502, 9, message, "upstream_error");
}
