import type { MiddlewareHandler } from "hono";
import { findPrincipalByHash, getTenant, type KeyPrincipal } from "../db/tenants";
import type { Action } from "../domain/actions";
import { ApiError } from "../domain/errors";
import { sha256Hex, timingSafeEqual } from "../domain/keys";
import { streamTokenSecret, verifyStreamToken } from "../domain/stream-token";
import { configFrom } from "../env";
import type { AppEnv } from "../http";

/**
 * Keys are looked up by hash and cached per isolate for KEY_CACHE_SECONDS (default 10 s):
 * a revoked or disabled key can stay usable on an isolate that cached it for at most that
 * long. Balances and limits are never taken from the cache: admission checks them in D1.
 */
const cache = new Map<string, { principal: KeyPrincipal | null; until: number }>();
const CACHE_LIMIT = 10_000;

export function forgetCachedKeys(): void {
  cache.clear();
}

export function bearerToken(header: string | undefined): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return match ? match[1]! : null;
}

export async function principalForSecret(
  db: D1Database,
  secret: string,
  cacheMs: number,
): Promise<KeyPrincipal | null> {
  const hash = await sha256Hex(secret);
  const now = Date.now();
  const hit = cache.get(hash);
  if (hit && hit.until > now) return hit.principal;
  const principal = await findPrincipalByHash(db, hash);
  if (cache.size >= CACHE_LIMIT) cache.clear();
  if (cacheMs > 0) cache.set(hash, { principal, until: now + cacheMs });
  return principal;
}

export function checkPrincipal(principal: KeyPrincipal | null, now = Date.now()): KeyPrincipal {
  if (!principal) throw new ApiError(401, "invalid_api_key", "the API key is not valid");
  const { key, tenant } = principal;
  if (key.status === "revoked") throw new ApiError(401, "key_revoked", "the API key has been revoked");
  if (key.expires_at !== null && key.expires_at <= now)
    throw new ApiError(401, "key_expired", "the API key has expired");
  if (key.status === "disabled") throw new ApiError(403, "key_disabled", "the API key is disabled");
  if (tenant.status !== "active") throw new ApiError(403, "tenant_suspended", "the tenant is suspended");
  return principal;
}

export function checkActionAllowed(principal: KeyPrincipal, action: Action): void {
  const allowed = principal.key.allowed_actions
    ? (JSON.parse(principal.key.allowed_actions) as string[])
    : null;
  if (allowed && !allowed.includes(action)) {
    throw new ApiError(403, "action_not_allowed", `this key may not use the '${action}' action`);
  }
}

/** Tenant servers authenticate with their sub-key, exactly like they would with the upstream key. */
export const requireSubKey: MiddlewareHandler<AppEnv> = async (c, next) => {
  const secret = bearerToken(c.req.header("authorization"));
  if (!secret) throw new ApiError(401, "missing_api_key", "send your key as 'Authorization: Bearer <key>'");
  const principal = checkPrincipal(await principalForSecret(c.env.DB, secret, configFrom(c.env).keyCacheMs));
  c.set("principal", principal);
  c.set("scope", {
    tenantId: principal.tenant.id,
    taskIds: null,
    corsOrigins: JSON.parse(principal.tenant.cors_origins) as string[],
  });
  await next();
};

const isStreamPath = (method: string, path: string) =>
  (method === "GET" || method === "OPTIONS") && path.endsWith("/events");

/**
 * /v1/*: the sub-key, or, on the stream endpoints only, a signed stream token in
 * `?token=` (browsers' EventSource cannot send an Authorization header).
 */
export const tenantAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  const token = c.req.query("token");
  if (!isStreamPath(c.req.method, c.req.path) || !token || c.req.header("authorization")) {
    return requireSubKey(c, next);
  }
  const check = await verifyStreamToken(token, streamTokenSecret(c.env), Math.floor(Date.now() / 1000));
  if (!check.ok) {
    throw check.reason === "expired"
      ? new ApiError(
          401,
          "stream_token_expired",
          "the stream token has expired; ask your server for a new one",
        )
      : new ApiError(401, "stream_token_invalid", "the stream token is not valid", { field: "token" });
  }
  const tenant = await getTenant(c.env.DB, check.claims.tenantId);
  if (!tenant)
    throw new ApiError(401, "stream_token_invalid", "the stream token is not valid", { field: "token" });
  if (tenant.status !== "active") throw new ApiError(403, "tenant_suspended", "the tenant is suspended");
  c.set("scope", {
    tenantId: tenant.id,
    taskIds: check.claims.taskIds,
    corsOrigins: JSON.parse(tenant.cors_origins) as string[],
  });
  await next();
};

export const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  const token = bearerToken(c.req.header("authorization"));
  const expected = c.env.ADMIN_TOKEN;
  if (!expected || !token || !timingSafeEqual(token, expected)) {
    throw new ApiError(
      401,
      "admin_unauthorized",
      "send the operator token as 'Authorization: Bearer <ADMIN_TOKEN>'",
    );
  }
  await next();
};
