import { z } from "zod";
import type { ModerationPolicy } from "./domain/moderation";
import { webhookUrlProblem } from "./domain/webhooks";
import type { TaskObject } from "./durable/task-object";
import type { TenantHub } from "./durable/tenant-hub";
import type { UpstreamGate } from "./durable/upstream-gate";

/** Bindings and variables of the gateway Worker (see wrangler.toml and README "Configuration"). */
export interface Env {
  DB: D1Database;
  TASKS: DurableObjectNamespace<TaskObject>;
  TENANT_HUB: DurableObjectNamespace<TenantHub>;
  /** One gate per upstream (idFromName(upstream id)): its in-flight slots, queue and health. */
  UPSTREAM_GATES: DurableObjectNamespace<UpstreamGate>;
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
  /** Most tasks waiting for a slot on one upstream (default 1000): past it a submit is 429 upstream_busy. */
  UPSTREAM_QUEUE_MAX?: string;
  /** Most of one tenant's tasks waiting on one upstream (default 100). */
  UPSTREAM_QUEUE_MAX_PER_TENANT?: string;
  /** A task waiting longer than this for a slot fails and is refunded (default 600). */
  UPSTREAM_QUEUE_MAX_WAIT_SECONDS?: string;
  /** Moderation strikes (src/domain/moderation.ts): window, thresholds, slow interval, first cooldown. */
  MODERATION_WINDOW_SECONDS?: string;
  MODERATION_SLOW_AFTER?: string;
  MODERATION_REFUSE_AFTER?: string;
  MODERATION_SLOW_INTERVAL_SECONDS?: string;
  MODERATION_COOLDOWN_SECONDS?: string;
  /** Encrypts upstream API keys at rest; required once an upstream other than `default` is added. */
  UPSTREAM_KEY_SECRET?: string;
  /** Hosted results (issue 14): the result files of `hosted` tenants, under t/{tenant}/{task}/{name}. */
  ASSETS_BUCKET?: R2Bucket;
  /** Archived history (issue 12): settled tasks and ledger rows past ARCHIVE_AFTER_DAYS, gzip NDJSON. */
  ARCHIVE_BUCKET?: R2Bucket;
  /** Settled history older than this many days moves to ARCHIVE_BUCKET (default 90; 0 = off). */
  ARCHIVE_AFTER_DAYS?: string;
  /** Signs hosted result links (HMAC); required once a hosted tenant's link is signed or checked. */
  ASSET_SIGNING_SECRET?: string;
  /** The gateway's public origin (https://gw.example.com): hosted links are built on it. */
  PUBLIC_BASE_URL?: string;
  /** Where the gateway sends operator events (upstream.unhealthy / upstream.recovered); unset or "": none. */
  OPERATOR_WEBHOOK_URL?: string;
  /** Signs those events (Standard Webhooks, "whsec_…"); required once OPERATOR_WEBHOOK_URL is set. */
  OPERATOR_WEBHOOK_SECRET?: string;
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
  /** Settled history older than this leaves D1 for ARCHIVE_BUCKET; 0 = never (src/services/archive.ts). */
  archiveAfterMs: number;
  /** Queue bounds per upstream gate: all tasks, and one tenant's (src/durable/upstream-gate.ts). */
  upstreamQueueMax: number;
  upstreamQueueMaxPerTenant: number;
  /** How long a task may wait for a slot before it fails and is refunded. */
  upstreamQueueMaxWaitMs: number;
  moderation: ModerationPolicy;
  /** Unset is fine until an upstream is added through the API (src/domain/upstream-crypto.ts). */
  upstreamKeySecret?: string;
  /** Hosted results: both are required only once a hosted tenant's link is signed (services/assets.ts). */
  assetSigningSecret?: string;
  publicBaseUrl?: string;
  /** Operator events go here, signed with `secret`; undefined: they are only logged. */
  operatorWebhook?: { url: string; secret: string };
}

/** A secret that must be set: an empty string is as missing as no binding at all. */
const secret = (name: string) =>
  z
    .string({ error: `${name} is not set` })
    .trim()
    .min(1, { error: `${name} is not set` });

/** A non-negative number given as a string; unset or "" takes the default (the one place defaults live). */
const numberVar = (fallback: number) =>
  z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value === "") return fallback;
      const parsed = Number(value);
      if (Number.isFinite(parsed) && parsed >= 0) return parsed;
      ctx.addIssue({ code: "custom", message: "must be a non-negative number" });
      return z.NEVER;
    });

/** A secret needed only by some features: unset or blank is undefined, and the feature says so when used. */
const optionalSecret = z
  .string()
  .optional()
  .transform((value) => value?.trim() || undefined);

const ConfigSchema = z.object({
  UPSTREAM_BASE_URL: secret("UPSTREAM_BASE_URL").transform((url) => url.replace(/\/+$/, "")),
  UPSTREAM_API_KEY: secret("UPSTREAM_API_KEY"),
  // Not read through the config, but a gateway without it cannot be operated: refuse to start.
  ADMIN_TOKEN: secret("ADMIN_TOKEN"),
  UPSTREAM_TIMEOUT_MS: numberVar(20_000),
  MODAL_TIMEOUT_SECONDS: numberVar(1800),
  TASK_MAX_LIFETIME_SECONDS: numberVar(7200),
  TASK_RETENTION_SECONDS: numberVar(3 * 86_400),
  KEY_CACHE_SECONDS: numberVar(10),
  WEBHOOK_RETENTION_DAYS: numberVar(30),
  ARCHIVE_AFTER_DAYS: numberVar(90),
  UPSTREAM_QUEUE_MAX: numberVar(1000),
  UPSTREAM_QUEUE_MAX_PER_TENANT: numberVar(100),
  UPSTREAM_QUEUE_MAX_WAIT_SECONDS: numberVar(600),
  MODERATION_WINDOW_SECONDS: numberVar(3600),
  MODERATION_SLOW_AFTER: numberVar(3),
  MODERATION_REFUSE_AFTER: numberVar(5),
  MODERATION_SLOW_INTERVAL_SECONDS: numberVar(30),
  MODERATION_COOLDOWN_SECONDS: numberVar(900),
  UPSTREAM_KEY_SECRET: optionalSecret,
  ASSET_SIGNING_SECRET: optionalSecret,
  PUBLIC_BASE_URL: z
    .string()
    .optional()
    .transform((url) => url?.trim().replace(/\/+$/, "") || undefined),
  OPERATOR_WEBHOOK_URL: optionalSecret,
  OPERATOR_WEBHOOK_SECRET: optionalSecret,
  ENVIRONMENT: z.string().optional(),
});

/** The configuration is unusable: names the variable, never its value. */
export class ConfigurationError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`the gateway is misconfigured: ${variable}: ${message}`);
    this.name = "ConfigurationError";
  }
}

function parseConfig(env: Env): GatewayConfig {
  const parsed = ConfigSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigurationError(String(issue?.path[0] ?? "configuration"), issue?.message ?? "invalid");
  }
  const vars = parsed.data;
  return {
    operatorWebhook: operatorWebhookOf(vars),
    upstreamBaseUrl: vars.UPSTREAM_BASE_URL,
    upstreamApiKey: vars.UPSTREAM_API_KEY,
    upstreamTimeoutMs: vars.UPSTREAM_TIMEOUT_MS,
    modalTimeoutMs: vars.MODAL_TIMEOUT_SECONDS * 1000,
    maxLifetimeMs: vars.TASK_MAX_LIFETIME_SECONDS * 1000,
    retentionMs: vars.TASK_RETENTION_SECONDS * 1000,
    keyCacheMs: vars.KEY_CACHE_SECONDS * 1000,
    webhookRetentionMs: vars.WEBHOOK_RETENTION_DAYS * 86_400_000,
    archiveAfterMs: vars.ARCHIVE_AFTER_DAYS * 86_400_000,
    upstreamQueueMax: vars.UPSTREAM_QUEUE_MAX,
    upstreamQueueMaxPerTenant: vars.UPSTREAM_QUEUE_MAX_PER_TENANT,
    upstreamQueueMaxWaitMs: vars.UPSTREAM_QUEUE_MAX_WAIT_SECONDS * 1000,
    moderation: {
      windowMs: vars.MODERATION_WINDOW_SECONDS * 1000,
      slowAfter: vars.MODERATION_SLOW_AFTER,
      refuseAfter: vars.MODERATION_REFUSE_AFTER,
      slowIntervalMs: vars.MODERATION_SLOW_INTERVAL_SECONDS * 1000,
      cooldownMs: vars.MODERATION_COOLDOWN_SECONDS * 1000,
    },
    upstreamKeySecret: vars.UPSTREAM_KEY_SECRET,
    assetSigningSecret: vars.ASSET_SIGNING_SECRET,
    publicBaseUrl: vars.PUBLIC_BASE_URL,
  };
}

/** Both or neither: a URL whose events could not be signed, or a URL the rules refuse, is a misconfiguration. */
function operatorWebhookOf(vars: z.infer<typeof ConfigSchema>): GatewayConfig["operatorWebhook"] {
  const url = vars.OPERATOR_WEBHOOK_URL;
  if (!url) return undefined;
  const problem = webhookUrlProblem(url, vars.ENVIRONMENT === "development");
  if (problem) throw new ConfigurationError("OPERATOR_WEBHOOK_URL", problem);
  const secret = vars.OPERATOR_WEBHOOK_SECRET;
  if (!secret) {
    throw new ConfigurationError(
      "OPERATOR_WEBHOOK_SECRET",
      "is not set (it signs OPERATOR_WEBHOOK_URL's events)",
    );
  }
  return { url, secret };
}

/** The env object lives as long as its isolate (or its test's override): parse it once. */
const parsedConfigs = new WeakMap<Env, GatewayConfig | ConfigurationError>();

/** The gateway's configuration; throws ConfigurationError (the same one on every call) when unusable. */
export function configFrom(env: Env): GatewayConfig {
  let config = parsedConfigs.get(env);
  if (!config) {
    try {
      config = parseConfig(env);
    } catch (error) {
      if (!(error instanceof ConfigurationError)) throw error;
      config = error;
    }
    parsedConfigs.set(env, config);
  }
  if (config instanceof ConfigurationError) throw config;
  return config;
}
