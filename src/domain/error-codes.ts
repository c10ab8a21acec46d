/**
 * Every error a client can see, in one table: the code raised in the code base, the HTTP
 * status and error `type` it is answered with, and what it means (published in the OpenAPI
 * document). Services and db callers name a code; only this table knows about HTTP.
 *
 * A few codes are answered with the same `code` as another one under a different status
 * (`shownAs`): the wire contract predates this table and clients rely on it, so e.g. a
 * negative adjustment beyond the balance stays `409 insufficient_balance` while a submit
 * without funds is `402 insufficient_balance`.
 */
export type ErrorStatus = 400 | 401 | 402 | 403 | 404 | 409 | 413 | 422 | 429 | 500 | 502 | 503 | 504;

export type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "billing_error"
  | "permission_error"
  | "not_found_error"
  | "conflict_error"
  | "idempotency_error"
  | "rate_limit_error"
  | "upstream_error"
  | "api_error";

interface ErrorCodeEntry {
  status: ErrorStatus;
  type: ErrorType;
  description: string;
  /** The wire `code` when it is shared with another entry (see above); else the entry's own name. */
  shownAs?: string;
}

export const ERROR_CODES = {
  invalid_request: {
    status: 400,
    type: "invalid_request_error",
    description: "a field is invalid (named by `field`)",
  },
  invalid_json: { status: 400, type: "invalid_request_error", description: "the body is not valid JSON" },
  parent_not_ready: {
    status: 400,
    type: "invalid_request_error",
    description: "the parent task cannot be acted on yet (or at all)",
  },
  upstream_rejected: {
    status: 400,
    type: "invalid_request_error",
    description: "the upstream refused the request",
  },
  upstream_unprocessable: {
    status: 422,
    type: "invalid_request_error",
    description: "the upstream refused the request as unprocessable",
    shownAs: "upstream_rejected",
  },
  payload_too_large: {
    status: 413,
    type: "invalid_request_error",
    description: "the body is larger than allowed",
  },
  missing_api_key: { status: 401, type: "authentication_error", description: "no credentials were sent" },
  invalid_api_key: { status: 401, type: "authentication_error", description: "the key is unknown" },
  key_revoked: { status: 401, type: "authentication_error", description: "the key was revoked" },
  key_expired: { status: 401, type: "authentication_error", description: "the key has expired" },
  admin_unauthorized: {
    status: 401,
    type: "authentication_error",
    description: "the operator token is wrong",
  },
  stream_token_invalid: {
    status: 401,
    type: "authentication_error",
    description: "the stream token is invalid",
  },
  stream_token_expired: {
    status: 401,
    type: "authentication_error",
    description: "the stream token has expired",
  },
  key_disabled: { status: 403, type: "permission_error", description: "the key is disabled" },
  tenant_suspended: { status: 403, type: "permission_error", description: "the tenant is suspended" },
  action_not_allowed: {
    status: 403,
    type: "permission_error",
    description: "the key may not run this action",
  },
  insufficient_scope: {
    status: 403,
    type: "permission_error",
    description: "the key lacks the route's scope",
  },
  stream_token_scope: {
    status: 403,
    type: "permission_error",
    description: "the stream token does not cover this stream",
  },
  origin_not_allowed: {
    status: 403,
    type: "permission_error",
    description: "the browser origin is not allowed",
  },
  asset_link_invalid: {
    status: 403,
    type: "permission_error",
    description: "the hosted file link's signature is missing or wrong",
  },
  asset_link_expired: {
    status: 403,
    type: "permission_error",
    description: "the hosted file link has expired",
  },
  not_found: { status: 404, type: "not_found_error", description: "no such route or resource" },
  asset_input_invalid: {
    status: 400,
    type: "invalid_request_error",
    description:
      "an image input points at a hosted file of this gateway, but its link is tampered with or unknown (named by `field`)",
  },
  asset_input_not_yours: {
    status: 400,
    type: "invalid_request_error",
    description: "an image input points at another tenant's hosted file (named by `field`)",
  },
  asset_not_found: {
    status: 404,
    type: "not_found_error",
    description: "no such hosted file (never stored, or deleted by retention)",
  },
  task_not_found: { status: 404, type: "not_found_error", description: "no such task for this tenant" },
  insufficient_balance: {
    status: 402,
    type: "billing_error",
    description: "the balance does not cover the price",
  },
  key_budget_exceeded: { status: 402, type: "billing_error", description: "the key's spend cap is reached" },
  adjustment_exceeds_balance: {
    status: 409,
    type: "conflict_error",
    description: "a negative adjustment would make the balance negative",
    shownAs: "insufficient_balance",
  },
  max_inflight_below_current: {
    status: 409,
    type: "conflict_error",
    description: "max_inflight is lower than the tasks in flight now",
    shownAs: "invalid_request",
  },
  revoked_key_is_final: {
    status: 409,
    type: "conflict_error",
    description: "a revoked key cannot be changed",
    shownAs: "key_revoked",
  },
  modal_not_available: {
    status: 409,
    type: "conflict_error",
    description: "the task is not waiting in MODAL",
  },
  modal_expired: { status: 409, type: "conflict_error", description: "the task waited in MODAL too long" },
  webhook_endpoint_limit: {
    status: 409,
    type: "conflict_error",
    description: "the tenant has the most active webhook endpoints allowed",
  },
  upstream_default_fixed: {
    status: 409,
    type: "conflict_error",
    description:
      "the default upstream comes from UPSTREAM_BASE_URL/UPSTREAM_API_KEY: it cannot be deleted, nor its URL or key changed through the API",
  },
  idempotency_in_progress: {
    status: 409,
    type: "idempotency_error",
    description: "a request with this Idempotency-Key is still running (or just failed): retry",
  },
  idempotency_key_reused: {
    status: 422,
    type: "idempotency_error",
    description: "the Idempotency-Key was used with another body",
  },
  rate_limited: {
    status: 429,
    type: "rate_limit_error",
    description: "the key's requests per minute are used up",
  },
  read_rate_limited: {
    status: 429,
    type: "rate_limit_error",
    description: "the key's reads per minute (task queries, streams, account, webhooks) are used up",
  },
  too_many_tasks: { status: 429, type: "rate_limit_error", description: "too many tasks in flight" },
  tenant_moderation_slowed: {
    status: 429,
    type: "rate_limit_error",
    description: "the upstream failed several of the tenant's prompts for moderation: its submits are slowed",
  },
  tenant_moderation_cooldown: {
    status: 429,
    type: "rate_limit_error",
    description:
      "the upstream failed too many of the tenant's prompts for moderation: its submits are refused for a cooldown that doubles each time",
  },
  too_many_auth_failures: {
    status: 429,
    type: "rate_limit_error",
    description: "too many failed authentications from this address",
  },
  upstream_rate_limited: { status: 429, type: "rate_limit_error", description: "the upstream is busy" },
  upstream_busy: {
    status: 429,
    type: "rate_limit_error",
    description: "every upstream that could take the task is at its cap; nothing was charged",
  },
  upstream_unavailable: {
    status: 503,
    type: "upstream_error",
    description: "no upstream is enabled, healthy and serving this action now; nothing was charged",
  },
  parent_upstream_unavailable: {
    status: 503,
    type: "upstream_error",
    description: "the upstream that ran the parent task is disabled or unhealthy; nothing was charged",
  },
  upstream_error: { status: 502, type: "upstream_error", description: "the upstream failed" },
  upstream_bad_response: {
    status: 502,
    type: "upstream_error",
    description: "the upstream's answer was unreadable",
  },
  upstream_timeout: {
    status: 504,
    type: "upstream_error",
    description: "the upstream did not answer in time",
  },
  database_busy: { status: 503, type: "api_error", description: "the database is overloaded: retry shortly" },
  configuration_error: { status: 500, type: "api_error", description: "the gateway is missing a setting" },
  internal_error: { status: 500, type: "api_error", description: "an unexpected error" },
} as const satisfies Record<string, ErrorCodeEntry>;

/** A code raised in the code base: a key of the table. */
export type ErrorKind = keyof typeof ERROR_CODES;

type WireCodeOf<K extends ErrorKind> = (typeof ERROR_CODES)[K] extends { shownAs: infer S } ? S : K;

/** A code a client sees in `error.code`. */
export type ErrorCode = { [K in ErrorKind]: WireCodeOf<K> }[ErrorKind];

export const wireCodeOf = (kind: ErrorKind): ErrorCode =>
  ((ERROR_CODES[kind] as ErrorCodeEntry).shownAs ?? kind) as ErrorCode;

const ALL_KINDS = Object.keys(ERROR_CODES) as ErrorKind[];

/** Every code a client may see, once each, in table order (the OpenAPI enum). */
export const WIRE_CODES = [...new Set(ALL_KINDS.map(wireCodeOf))] as [ErrorCode, ...ErrorCode[]];

/** The table's entry answered with this status and wire code (they are unique together). */
export function kindOfWire(status: number, code: ErrorCode): ErrorKind {
  return ALL_KINDS.find((kind) => ERROR_CODES[kind].status === status && wireCodeOf(kind) === code) ?? code;
}
