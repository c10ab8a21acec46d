import type { Context, MiddlewareHandler } from "hono";
import { findPrincipalByHash, findPrincipalByKeyId, getTenant, type KeyPrincipal } from "../db/tenants";
import type { Action } from "../domain/actions";
import { ApiError } from "../domain/errors";
import { looksLikeSubKey, sha256Hex, timingSafeEqual } from "../domain/keys";
import { Lru } from "../domain/lru";
import { streamTokenSecret, verifyStreamToken } from "../domain/stream-token";
import { configFrom } from "../env";
import type { AppEnv, StreamScope } from "../http";
import { AbuseShield } from "./abuse-shield";

/**
 * Keys are looked up by hash and cached per isolate for KEY_CACHE_SECONDS (default 10 s):
 * a revoked or disabled key can stay usable on an isolate that cached it for at most that
 * long. Balances and limits are never taken from the cache: admission checks them in D1.
 *
 * Two bounded LRUs: keys D1 knows, and (smaller) hashes D1 does not know. A flood of random
 * bearers only churns the second one, so it can never push a real key out of the cache.
 */
export const KEY_CACHE_LIMITS = { known: 10_000, unknown: 1_000 } as const;
const knownKeys = new Lru<{ principal: KeyPrincipal; until: number }>(KEY_CACHE_LIMITS.known);
const unknownKeys = new Lru<number>(KEY_CACHE_LIMITS.unknown);

/** Whether a stream's key (or, for operator tokens, its tenant) still holds, per isolate. */
const streamAuthority = new Lru<{ allowed: boolean; until: number }>(KEY_CACHE_LIMITS.known);

/** After a key or tenant changed: the next request reads D1 again. */
export function forgetCachedKeys(): void {
  knownKeys.clear();
  unknownKeys.clear();
  streamAuthority.clear();
}

/**
 * How often an open stream re-checks its authority, and how long one answer is shared by
 * the streams of the same key on an isolate: half of KEY_CACHE_SECONDS each, so a change is
 * seen within KEY_CACHE_SECONDS (at most one stale answer, then a fresh read). One D1 read
 * per key (not per stream) per half period.
 */
export const streamCheckMs = (keyCacheMs: number) => Math.max(500, keyCacheMs / 2);

export async function streamStillAuthorized(
  db: D1Database,
  scope: StreamScope,
  keyCacheMs: number,
  now = Date.now(),
): Promise<boolean> {
  const id = scope.keyId ? `key:${scope.keyId}` : `tenant:${scope.tenantId}`;
  const cached = streamAuthority.get(id);
  if (cached && cached.until > now) return cached.allowed;
  const allowed = scope.keyId
    ? keyStillUsable(await findPrincipalByKeyId(db, scope.keyId), scope.tenantId, now)
    : (await getTenant(db, scope.tenantId))?.status === "active";
  if (keyCacheMs > 0) streamAuthority.set(id, { allowed, until: now + keyCacheMs / 2 });
  return allowed;
}

function keyStillUsable(principal: KeyPrincipal | null, tenantId: string, now: number): boolean {
  try {
    return checkPrincipal(principal, now).tenant.id === tenantId;
  } catch {
    return false;
  }
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
  // Cheap to refuse: what cannot be a key costs neither a SHA-256 nor a D1 read.
  if (!looksLikeSubKey(secret)) return null;
  const hash = await sha256Hex(secret);
  const now = Date.now();
  const known = knownKeys.get(hash);
  if (known) {
    if (known.until > now) return known.principal;
    knownKeys.delete(hash);
  }
  const unknownUntil = unknownKeys.get(hash);
  if (unknownUntil !== undefined) {
    if (unknownUntil > now) return null;
    unknownKeys.delete(hash);
  }
  const principal = await findPrincipalByHash(db, hash);
  if (cacheMs > 0) {
    if (principal) knownKeys.set(hash, { principal, until: now + cacheMs });
    else unknownKeys.set(hash, now + cacheMs);
  }
  return principal;
}

/**
 * Failed authentication (a 401 of the auth middleware) is throttled per client IP
 * (CF-Connecting-IP, which Cloudflare always sets; a request without it, as in tests and
 * local tools, is not throttled): more than AUTH_FAILURE_LIMIT failures in
 * AUTH_FAILURE_PERIOD_SECONDS and the IP gets 429 `too_many_auth_failures` for a period,
 * refused before any hashing or D1 read.
 *
 * Counting uses the Workers rate-limiting binding AUTH_FAILURE_LIMITER (wrangler.toml
 * `[[ratelimits]]`, same limit and period) when it is bound: it is per location and only
 * roughly accurate, which is all an abuse shield needs. Without the binding (a config that
 * lacks it) a small per-isolate counter does the same job on each isolate.
 */
export const AUTH_FAILURE_LIMIT = 20;
export const AUTH_FAILURE_PERIOD_SECONDS = 60;
const IP_LIMIT = 10_000;
const blockedIps = new Lru<number>(IP_LIMIT);
const authFailures = new AbuseShield(AUTH_FAILURE_LIMIT, AUTH_FAILURE_PERIOD_SECONDS, IP_LIMIT);

/** For tests: every IP starts unthrottled again. */
export function forgetAuthFailures(): void {
  blockedIps.clear();
  authFailures.forget();
}

function tooManyFailures(untilMs: number, now: number): ApiError {
  const seconds = Math.max(1, Math.ceil((untilMs - now) / 1000));
  return new ApiError(
    "too_many_auth_failures",
    `too many failed authentication attempts from this address; retry in ${seconds} s`,
    { headers: { "Retry-After": String(seconds) } },
  );
}

/** Any 401, except a stream token that merely expired (browsers meet that in normal use). */
const countsAsFailure = (error: unknown) =>
  error instanceof ApiError && error.status === 401 && error.code !== "stream_token_expired";

/**
 * Runs an authentication step with the per-IP throttle around it: a blocked IP is refused
 * at once; a 401 counts as a failure, and the one over the limit becomes the 429.
 */
async function throttled(c: Context<AppEnv>, authenticate: () => Promise<void>): Promise<void> {
  const ip = c.req.header("cf-connecting-ip");
  if (!ip) return authenticate();
  const now = Date.now();
  const blockedUntil = blockedIps.get(ip);
  if (blockedUntil !== undefined) {
    if (blockedUntil > now) throw tooManyFailures(blockedUntil, now);
    blockedIps.delete(ip);
  }
  try {
    await authenticate();
  } catch (error) {
    if (
      countsAsFailure(error) &&
      (await authFailures.over(c.env.AUTH_FAILURE_LIMITER, `auth-failure:${ip}`, now))
    ) {
      const until = now + AUTH_FAILURE_PERIOD_SECONDS * 1000;
      blockedIps.set(ip, until);
      throw tooManyFailures(until, now);
    }
    throw error;
  }
}

export function checkPrincipal(principal: KeyPrincipal | null, now = Date.now()): KeyPrincipal {
  if (!principal) throw new ApiError("invalid_api_key", "the API key is not valid");
  const { key, tenant } = principal;
  if (key.status === "revoked") throw new ApiError("key_revoked", "the API key has been revoked");
  if (key.expires_at !== null && key.expires_at <= now)
    throw new ApiError("key_expired", "the API key has expired");
  if (key.status === "disabled") throw new ApiError("key_disabled", "the API key is disabled");
  if (tenant.status !== "active") throw new ApiError("tenant_suspended", "the tenant is suspended");
  return principal;
}

export function checkActionAllowed(principal: KeyPrincipal, action: Action): void {
  const allowed = principal.key.allowed_actions
    ? (JSON.parse(principal.key.allowed_actions) as string[])
    : null;
  if (allowed && !allowed.includes(action)) {
    throw new ApiError("action_not_allowed", `this key may not use the '${action}' action`);
  }
}

/** The sub-key of the request, or the 401 that says why not. */
async function authenticateSubKey(c: Context<AppEnv>): Promise<void> {
  const secret = bearerToken(c.req.header("authorization"));
  if (!secret) throw new ApiError("missing_api_key", "send your key as 'Authorization: Bearer <key>'");
  const principal = checkPrincipal(await principalForSecret(c.env.DB, secret, configFrom(c.env).keyCacheMs));
  c.set("principal", principal);
  c.set("scope", {
    tenantId: principal.tenant.id,
    taskIds: null,
    corsOrigins: JSON.parse(principal.tenant.cors_origins) as string[],
    keyId: principal.key.id,
  });
}

/** Tenant servers authenticate with their sub-key, exactly like they would with the upstream key. */
export const requireSubKey: MiddlewareHandler<AppEnv> = async (c, next) => {
  await throttled(c, () => authenticateSubKey(c));
  await next();
};

const isStreamPath = (method: string, path: string) =>
  (method === "GET" || method === "OPTIONS") && path.endsWith("/events");

/**
 * /v1/*: the sub-key, or, on the stream endpoints only, a signed stream token in
 * `?token=` (browsers' EventSource cannot send an Authorization header).
 */
export const tenantAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  await throttled(c, () => authenticateTenant(c));
  await next();
};

async function authenticateTenant(c: Context<AppEnv>): Promise<void> {
  const token = c.req.query("token");
  if (!isStreamPath(c.req.method, c.req.path) || !token || c.req.header("authorization")) {
    return authenticateSubKey(c);
  }
  const check = await verifyStreamToken(token, streamTokenSecret(c.env), Math.floor(Date.now() / 1000));
  if (!check.ok) {
    throw check.reason === "expired"
      ? new ApiError("stream_token_expired", "the stream token has expired; ask your server for a new one")
      : new ApiError("stream_token_invalid", "the stream token is not valid", { field: "token" });
  }
  // A token minted with a sub-key lives only as long as that key: revoked, disabled or
  // expired (or its tenant suspended) ends it, read fresh from D1 at every stream opening.
  const keyId = check.claims.keyId;
  const tenant = keyId
    ? checkPrincipal(await findPrincipalByKeyId(c.env.DB, keyId)).tenant
    : await getTenant(c.env.DB, check.claims.tenantId);
  if (!tenant || tenant.id !== check.claims.tenantId)
    throw new ApiError("stream_token_invalid", "the stream token is not valid", { field: "token" });
  if (tenant.status !== "active") throw new ApiError("tenant_suspended", "the tenant is suspended");
  c.set("scope", {
    tenantId: tenant.id,
    taskIds: check.claims.taskIds,
    corsOrigins: JSON.parse(tenant.cors_origins) as string[],
    keyId: keyId ?? null,
  });
}

export const ADMIN_TOKEN_HINT = "send the operator token as 'Authorization: Bearer <ADMIN_TOKEN>'";

/** Whether an Authorization header carries the operator token (never true when none is set). */
export function isAdminToken(authorization: string | undefined, expected: string | undefined): boolean {
  const token = bearerToken(authorization);
  return Boolean(expected && token && timingSafeEqual(token, expected));
}

/** The operator token; failures count towards the same per-IP throttle as sub-keys. */
export const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  await throttled(c, async () => {
    if (!isAdminToken(c.req.header("authorization"), c.env.ADMIN_TOKEN)) {
      throw new ApiError("admin_unauthorized", ADMIN_TOKEN_HINT);
    }
  });
  await next();
};
