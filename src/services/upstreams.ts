/**
 * The operator's upstream pool: what the admin routes share. The `default` member's URL and
 * key come from the environment (UPSTREAM_BASE_URL/UPSTREAM_API_KEY) and are shown from
 * there; every other member's key is sealed under UPSTREAM_KEY_SECRET before it reaches D1.
 */
import { isRefused, type Refused } from "../db/constraints";
import { marginTotals } from "../db/margin-reads";
import {
  DEFAULT_UPSTREAM_ID,
  getUpstream,
  insertUpstream,
  newUpstreamId,
  type UpstreamRefusal,
  type UpstreamRow,
  updateUpstream,
} from "../db/upstreams";
import { ApiError } from "../domain/errors";
import { publicUrlProblem } from "../domain/public-url";
import { keyHint, type SealedKey, sealKey } from "../domain/upstream-crypto";
import { configFrom, type Env } from "../env";
import { type UpstreamChanges, type UpstreamInput, upstreamJson } from "../schemas/upstream";

export const gateOf = (env: Env, upstreamId: string) =>
  env.UPSTREAM_GATES.get(env.UPSTREAM_GATES.idFromName(upstreamId));

export const upstreamNotFound = (id: string) =>
  new ApiError("not_found", `upstream ${id} not found`, { field: "upstream_id" });

export async function upstreamOr404(db: D1Database, id: string): Promise<UpstreamRow> {
  const row = await getUpstream(db, id);
  if (!row) throw upstreamNotFound(id);
  return row;
}

/**
 * The console refreshes the pool every few seconds and the read sums today's settled tasks,
 * so each isolate keeps the sums this long: a busy day's rows are read twice a minute, not
 * on every refresh.
 */
export const COSTS_CACHE_MS = 30_000;
let cachedCosts: { day: number; until: number; costs: Map<string, number> } | null = null;

export function forgetCachedCostsToday(): void {
  cachedCosts = null;
}

/** Upstream cost per member of the tasks that finished today (UTC), by the margin read: one source of truth. */
export async function upstreamCostsToday(db: D1Database, now = Date.now()): Promise<Map<string, number>> {
  const today = new Date(now);
  const from = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate());
  if (cachedCosts && cachedCosts.day === from && cachedCosts.until > now) return cachedCosts.costs;
  const rows = await marginTotals(db, { from, to: undefined }, ["upstream"]);
  const costs = new Map(
    rows.flatMap((r) => (r.upstream ? [[r.upstream, r.upstream_cost_micros] as const] : [])),
  );
  cachedCosts = { day: from, until: now + COSTS_CACHE_MS, costs };
  return costs;
}

/**
 * Members as the operator sees them: the default one's URL and key hint read from the
 * environment, each with its gate's report and today's upstream cost (one D1 read for all).
 */
export async function upstreamViews(env: Env, rows: readonly UpstreamRow[]) {
  const costs = await upstreamCostsToday(env.DB);
  return Promise.all(rows.map((row) => upstreamView(env, row, costs.get(row.id) ?? 0)));
}

async function upstreamView(env: Env, row: UpstreamRow, costTodayMicros: number) {
  const gate = await gateOf(env, row.id).report();
  if (row.id !== DEFAULT_UPSTREAM_ID) {
    const origin = { base_url: row.base_url!, key_hint: row.key_hint!, source: "api" as const };
    return upstreamJson(row, origin, gate, costTodayMicros);
  }
  const config = configFrom(env);
  const origin = {
    base_url: config.upstreamBaseUrl,
    key_hint: keyHint(config.upstreamApiKey),
    source: "environment" as const,
  };
  return upstreamJson(row, origin, gate, costTodayMicros);
}

export const oneUpstreamView = async (env: Env, row: UpstreamRow) => (await upstreamViews(env, [row]))[0]!;

/** https only, as for webhooks (loopback http in development); stored without trailing slashes. */
function checkedBaseUrl(env: Env, raw: string): string {
  const problem =
    publicUrlProblem(raw, { schemes: ["https:"], allowLoopback: env.ENVIRONMENT === "development" }) ??
    (/[?#]/.test(raw) ? "must not have a query or fragment" : null);
  if (problem) throw new ApiError("invalid_request", `base_url: ${problem}`, { field: "base_url" });
  return raw.replace(/\/+$/, "");
}

/** The secret sealing added members' keys: a 500 naming it when a request needs it and it is unset. */
export function upstreamKeySecret(env: Env): string {
  const secret = configFrom(env).upstreamKeySecret;
  if (secret) return secret;
  throw new ApiError(
    "configuration_error",
    "the gateway is misconfigured: UPSTREAM_KEY_SECRET: is not set (it encrypts the API keys of added upstreams)",
  );
}

const sealedKey = (env: Env, upstreamId: string, apiKey: string): Promise<SealedKey> =>
  sealKey(upstreamKeySecret(env), upstreamId, apiKey);

/** The route validated every field; a CHECK refusing the write anyway is a bug, not a 4xx. */
function written(row: UpstreamRow | null | Refused<UpstreamRefusal>): UpstreamRow | null {
  if (isRefused(row)) throw new Error(`upstream write refused by ${row.refused}`);
  return row;
}

export async function createUpstream(env: Env, input: UpstreamInput): Promise<UpstreamRow> {
  const id = newUpstreamId();
  const { api_key, base_url, ...settings } = input;
  const row = await insertUpstream(env.DB, {
    ...settings,
    id,
    base_url: checkedBaseUrl(env, base_url),
    key: await sealedKey(env, id, api_key),
  });
  return written(row)!;
}

export async function changeUpstream(env: Env, id: string, changes: UpstreamChanges): Promise<UpstreamRow> {
  const { api_key, base_url, ...settings } = changes;
  if (id === DEFAULT_UPSTREAM_ID && (api_key !== undefined || base_url !== undefined)) {
    throw new ApiError(
      "upstream_default_fixed",
      `${base_url !== undefined ? "base_url" : "api_key"}: the default upstream's URL and key come from UPSTREAM_BASE_URL and UPSTREAM_API_KEY; change them there`,
      { field: base_url !== undefined ? "base_url" : "api_key" },
    );
  }
  await upstreamOr404(env.DB, id);
  const row = await updateUpstream(env.DB, id, {
    ...settings,
    base_url: base_url === undefined ? undefined : checkedBaseUrl(env, base_url),
    key: api_key === undefined ? undefined : await sealedKey(env, id, api_key),
  });
  return written(row) ?? Promise.reject(upstreamNotFound(id));
}

/** DELETE disables: tasks already on the member keep polling it. The default member stays. */
export async function removeUpstream(env: Env, id: string): Promise<void> {
  if (id === DEFAULT_UPSTREAM_ID) {
    throw new ApiError(
      "upstream_default_fixed",
      "the default upstream (UPSTREAM_BASE_URL/UPSTREAM_API_KEY) cannot be deleted; PATCH it with enabled: false to stop using it",
      { field: "upstream_id" },
    );
  }
  await changeUpstream(env, id, { enabled: false });
}
