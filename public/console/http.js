// @ts-check
/**
 * Calls to the gateway: the admin token or a tenant key as an Authorization header (never in
 * a URL), the gateway's one error shape {"error":{"code","message"}} read into GatewayError,
 * and a sentence for a person for the errors that matter (expired token, 402, 429).
 */
import { session } from "./session.js";

/** An error answered by the gateway (or the network), with what the console needs to explain it. */
export class GatewayError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the gateway could not be reached
   * @param {string} code the gateway's error.code
   * @param {string} message the gateway's error.message
   * @param {{ retryAfter?: number | null, requestId?: string | null }} [extra]
   */
  constructor(status, code, message, extra = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = extra.retryAfter ?? null;
    this.requestId = extra.requestId ?? null;
  }
}

/**
 * Calls the gateway. `auth: "admin"` sends the admin token; a string sends that tenant key.
 * Resolves to the parsed JSON body (or the Response with `raw`); rejects with GatewayError.
 * @param {string} path
 * @param {{ method?: string, body?: unknown, auth?: "admin" | string | null, raw?: boolean }} [options]
 * @returns {Promise<any>}
 */
export async function call(path, options = {}) {
  /** @type {Record<string, string>} */
  const headers = { accept: "application/json" };
  const credential = options.auth === "admin" ? session.adminToken() : options.auth;
  if (credential) headers.authorization = `Bearer ${credential}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method: options.method ?? "GET",
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      cache: "no-store",
    });
  } catch {
    throw new GatewayError(0, "network_error", "The gateway could not be reached: check your connection.");
  }
  if (response.ok) return options.raw ? response : response.status === 204 ? null : response.json();
  const error = await errorFrom(response);
  if (options.auth === "admin" && error.status === 401) onAdminRejected(error);
  throw error;
}

/** @param {Response} response */
export async function errorFrom(response) {
  const text = await response.text().catch(() => "");
  let code = `http_${response.status}`;
  let message = response.statusText || `HTTP ${response.status}`;
  let requestId = response.headers.get("x-request-id");
  try {
    const body = JSON.parse(text);
    const error = body && typeof body.error === "object" ? body.error : body;
    if (error?.code !== undefined) code = String(error.code);
    if (typeof error?.message === "string") message = error.message;
    if (typeof error?.request_id === "string") requestId = error.request_id;
  } catch {
    if (text && text.length < 300) message = text;
  }
  const retry = Number(response.headers.get("retry-after"));
  return new GatewayError(response.status, code, message, {
    retryAfter: Number.isFinite(retry) && retry > 0 ? retry : null,
    requestId,
  });
}

/** @param {string} path @param {{ method?: string, body?: unknown, raw?: boolean }} [options] */
export const admin = (path, options = {}) => call(path, { ...options, auth: "admin" });

/**
 * A sentence for a person: what went wrong and what to do about it.
 * @param {unknown} error
 */
export function explain(error) {
  if (!(error instanceof GatewayError)) return error instanceof Error ? error.message : String(error);
  const retry = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : " Try again shortly.";
  switch (error.code) {
    case "admin_unauthorized":
      return "The admin token was rejected (wrong or expired). Log in again.";
    case "insufficient_balance":
      return "Insufficient balance (402): top up this tenant on the Tenants & keys page.";
    case "key_budget_exceeded":
      return "This key's daily or monthly spend cap is reached (402): raise the cap or use another key.";
    case "too_many_tasks":
      return `Too many tasks in flight for this key or tenant (429).${retry}`;
    case "invalid_api_key":
    case "missing_api_key":
      return "The tenant key is not valid (401): paste another key or create one.";
    case "key_revoked":
      return "The tenant key has been revoked (401): create a new key.";
    case "key_expired":
      return "The tenant key has expired (401): create a new key or extend its expiry.";
    case "key_disabled":
      return "The tenant key is disabled (403): enable it on the Tenants & keys page.";
    case "insufficient_scope":
      return `${error.message} (403): add the scope to the key on the Tenants & keys page.`;
    case "too_many_auth_failures":
      return `Too many failed logins or keys from this address (429).${retry}`;
    case "tenant_suspended":
      return "The tenant is suspended (403): activate it on the Tenants & keys page.";
    case "stream_token_expired":
      return "The live stream's token expired; reconnecting with a new one.";
    case "network_error":
      return error.message;
  }
  if (error.status === 429) return `Rate limited (429): ${error.message}.${retry}`;
  const id = error.requestId ? ` · request ${error.requestId}` : "";
  return `${error.message} (${error.status} ${error.code}${id})`;
}

/** @type {(error: GatewayError) => void} */
let adminRejected = () => {};

/**
 * What to do when the admin token stops working mid-session (the page shell shows its login
 * form): set by the shell, so this module needs no page.
 * @param {(error: GatewayError) => void} handler
 */
export function whenAdminRejected(handler) {
  adminRejected = handler;
}

/** The admin token stopped working mid-session: forget it and let the shell ask again. */
function onAdminRejected(/** @type {GatewayError} */ error) {
  session.forgetAdminToken();
  adminRejected(error);
}
