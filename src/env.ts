import type { TaskObject } from "./durable/task-object";
import type { TenantHub } from "./durable/tenant-hub";

/** Bindings and variables of the gateway Worker (see wrangler.toml and README "Configuration"). */
export interface Env {
  DB: D1Database;
  TASKS: DurableObjectNamespace<TaskObject>;
  TENANT_HUB: DurableObjectNamespace<TenantHub>;
  /** Workers rate-limiting binding for failed authentication per IP (optional: see middleware/auth.ts). */
  AUTH_FAILURE_LIMITER?: RateLimit;
  /** Workers rate-limiting binding for tenant reads per key (optional: see middleware/read-limit.ts). */
  READ_LIMITER?: RateLimit;
  UPSTREAM_BASE_URL: string;
  UPSTREAM_API_KEY: string;
  ADMIN_TOKEN: string;
  UPSTREAM_TIMEOUT_MS?: string;
  MODAL_TIMEOUT_SECONDS?: string;
  TASK_MAX_LIFETIME_SECONDS?: string;
  TASK_RETENTION_SECONDS?: string;
  KEY_CACHE_SECONDS?: string;
  /** Days a settled webhook delivery and its attempts are kept (default 30). */
  WEBHOOK_RETENTION_DAYS?: string;
  /** Signs stream tokens; required unless ENVIRONMENT is "development" (src/domain/stream-token.ts). */
  STREAM_TOKEN_SECRET?: string;
  /** "development" allows loopback webhook URLs, the x-debug-d1 header and a derived stream-token secret. */
  ENVIRONMENT?: string;
}

export interface GatewayConfig {
  upstreamBaseUrl: string;
  upstreamApiKey: string;
  upstreamTimeoutMs: number;
  modalTimeoutMs: number;
  maxLifetimeMs: number;
  retentionMs: number;
  keyCacheMs: number;
  webhookRetentionMs: number;
}

function numberVar(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === "") return fallback;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0)
    throw new Error(`configuration ${name} must be a non-negative number`);
  return parsed;
}

export function configFrom(env: Env): GatewayConfig {
  return {
    upstreamBaseUrl: (env.UPSTREAM_BASE_URL ?? "").replace(/\/+$/, ""),
    upstreamApiKey: env.UPSTREAM_API_KEY ?? "",
    upstreamTimeoutMs: numberVar(env.UPSTREAM_TIMEOUT_MS, 20_000, "UPSTREAM_TIMEOUT_MS"),
    modalTimeoutMs: numberVar(env.MODAL_TIMEOUT_SECONDS, 1800, "MODAL_TIMEOUT_SECONDS") * 1000,
    maxLifetimeMs: numberVar(env.TASK_MAX_LIFETIME_SECONDS, 7200, "TASK_MAX_LIFETIME_SECONDS") * 1000,
    retentionMs: numberVar(env.TASK_RETENTION_SECONDS, 3 * 86_400, "TASK_RETENTION_SECONDS") * 1000,
    keyCacheMs: numberVar(env.KEY_CACHE_SECONDS, 10, "KEY_CACHE_SECONDS") * 1000,
    webhookRetentionMs: numberVar(env.WEBHOOK_RETENTION_DAYS, 30, "WEBHOOK_RETENTION_DAYS") * 86_400_000,
  };
}
