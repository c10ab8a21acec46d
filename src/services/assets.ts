/**
 * Hosted results (issue 14): copying a successful task's result files into R2, serving them
 * behind signed links, and deleting them after the tenant's retention.
 *
 * Files are streamed end to end (upstream body → FixedLengthStream → R2 `put`; R2 → client),
 * never held whole in memory: videos can be hundreds of MiB.
 */

import {
  expiredAssetFiles,
  fileByCapability,
  forgetAssetFiles,
  getAssetSettings,
  recordAssetFile,
} from "../db/assets";
import {
  assetObjectKey,
  assetPath,
  capabilityLink,
  checkAssetLink,
  fileNamesFor,
  isCapabilityToken,
  newCapabilityToken,
  parseByteRange,
  resultFileUrls,
  signAssetLink,
} from "../domain/asset-links";
import { ApiError } from "../domain/errors";
import type { Env, GatewayConfig } from "../env";
import { logEvent } from "../log";
import { countServedBytes } from "./asset-usage";

/** What a hosted task keeps in its record: the upstream URL → signed gateway link of every copied file. */
export interface HostedAssets {
  links: Record<string, string>;
  storedAt: number;
}

/** A whole file download may take a while (a large video); a stalled one must still end. */
const COPY_TIMEOUT_MS = 5 * 60_000;
/** Tries per file before a hosted task falls back to the upstream's URL for it (a 4xx is not retried). */
const COPY_ATTEMPTS = 4;
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 4_000;

export const IMMUTABLE_CACHE = "public, max-age=31536000, immutable";

type AssetEnv = Pick<Env, "DB" | "ASSETS_BUCKET">;

interface HostingInput {
  tenantId: string;
  taskId: string;
  result: unknown;
  now: number;
}

/**
 * Copies a successful task's result files for a hosted tenant and signs a link to each.
 * Null when there is nothing to host (an `upstream` tenant, no files, a missing setting, the
 * tenant unreadable): the task view then keeps the upstream's URLs, and the log says why.
 * A file that cannot be copied within the bound keeps its upstream URL (logged).
 */
export async function hostResultFiles(
  env: AssetEnv,
  config: GatewayConfig,
  input: HostingInput,
): Promise<HostedAssets | null> {
  const urls = resultFileUrls(input.result);
  if (!urls.length) return null;
  const settings = await getAssetSettings(env.DB, input.tenantId).catch((error: unknown) => {
    logEvent("asset_hosting_skipped", { task_id: input.taskId, reason: `tenant unreadable: ${error}` });
    return null;
  });
  if (settings?.asset_mode !== "hosted") return null;
  const missing = missingSetting(env, config);
  if (missing) {
    logEvent("configuration_error", {
      task_id: input.taskId,
      missing_setting: missing,
      message: `hosted results need ${missing}: the task keeps the upstream's URLs`,
    });
    return null;
  }
  const bucket = env.ASSETS_BUCKET!;
  const names = fileNamesFor(urls);
  const exp = Math.floor(input.now / 1000) + settings.asset_link_ttl_seconds;
  // Wall time of the copy (Date.now advances across I/O in Workers): the bench reads it from this log.
  const started = Date.now();
  let bytesCopied = 0;
  const copied = await Promise.all(
    urls.map(async (url, i) => {
      const objectKey = assetObjectKey(input.tenantId, input.taskId, names[i]!);
      const bytes = await copyWithRetries(bucket, url, objectKey, COPY_ATTEMPTS, input.taskId);
      if (bytes === null) return null;
      bytesCopied += bytes;
      if (settings.asset_links === "capability") {
        const capability = newCapabilityToken();
        await recordAssetFile(env.DB, { ...input, objectKey, bytes, storedAt: input.now, capability });
        return [url, capabilityLink(config.publicBaseUrl!, capability, names[i]!)];
      }
      await recordAssetFile(env.DB, { ...input, objectKey, bytes, storedAt: input.now });
      return [url, await signAssetLink(config.publicBaseUrl!, objectKey, exp, config.assetSigningSecret!)];
    }),
  );
  const links = Object.fromEntries(copied.filter((pair) => pair !== null));
  logEvent("asset_hosting_done", {
    task_id: input.taskId,
    files: urls.length,
    copied: Object.keys(links).length,
    bytes: bytesCopied,
    duration_ms: Date.now() - started,
  });
  return { links, storedAt: input.now };
}

/**
 * An operator turning a tenant to `hosted` on a gateway that cannot host: 500
 * `configuration_error` naming the missing setting (and one log line), nothing written.
 */
export function requireHostingConfigured(
  env: AssetEnv,
  config: GatewayConfig,
  mode: string | undefined,
): void {
  if (mode !== "hosted") return;
  const missing = missingSetting(env, config);
  if (!missing) return;
  logEvent("configuration_error", { missing_setting: missing, message: `hosted results need ${missing}` });
  throw new ApiError(
    "configuration_error",
    `the gateway is misconfigured: ${missing} is not set (needed by asset_mode hosted)`,
  );
}

function missingSetting(env: AssetEnv, config: GatewayConfig): string | null {
  if (!env.ASSETS_BUCKET) return "ASSETS_BUCKET";
  if (!config.assetSigningSecret) return "ASSET_SIGNING_SECRET";
  if (!config.publicBaseUrl) return "PUBLIC_BASE_URL";
  return null;
}

class PermanentCopyFailure extends Error {}

/** The file's size once stored, or null after `attempts` (logged); a 4xx from the upstream is not retried. */
async function copyWithRetries(
  bucket: R2Bucket,
  url: string,
  objectKey: string,
  attempts: number,
  taskId: string,
): Promise<number | null> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await copyOnce(bucket, url, objectKey);
    } catch (error) {
      const permanent = error instanceof PermanentCopyFailure;
      if (permanent || attempt >= attempts) {
        logEvent("asset_copy_failed", {
          task_id: taskId,
          object_key: objectKey,
          attempts: attempt,
          reason: String(error instanceof Error ? error.message : error),
          fallback: "the upstream's URL stays in the task view",
        });
        return null;
      }
      await new Promise((resolve) =>
        setTimeout(resolve, Math.min(BACKOFF_BASE_MS * 2 ** (attempt - 1), BACKOFF_MAX_MS)),
      );
    }
  }
}

async function copyOnce(bucket: R2Bucket, url: string, objectKey: string): Promise<number> {
  const response = await fetch(url, { signal: AbortSignal.timeout(COPY_TIMEOUT_MS) });
  if (!response.ok) {
    await response.body?.cancel().catch(() => {});
    const retryable = response.status >= 500 || response.status === 408 || response.status === 429;
    const message = `the upstream answered ${response.status}`;
    throw retryable ? new Error(message) : new PermanentCopyFailure(message);
  }
  const lengthHeader = response.headers.get("content-length");
  const length = Number(lengthHeader);
  if (lengthHeader === null || !Number.isSafeInteger(length) || length < 0) {
    await response.body?.cancel().catch(() => {});
    // R2 needs a known length to take a stream; buffering an unknown one is what we refuse to do.
    throw new PermanentCopyFailure("the upstream sent no Content-Length");
  }
  const contentType = response.headers.get("content-type") ?? "application/octet-stream";
  const body = response.body ? response.body.pipeThrough(new FixedLengthStream(length)) : "";
  await bucket.put(objectKey, body, { httpMetadata: { contentType, cacheControl: IMMUTABLE_CACHE } });
  return length;
}

/**
 * GET /assets/t/{tenant}/{task}/{name}?exp=&sig=: checks the link, then answers the file.
 */
export async function serveAsset(
  env: AssetEnv,
  config: GatewayConfig,
  request: Request,
  objectKey: string,
  waitUntil: (promise: Promise<unknown>) => void,
): Promise<Response> {
  const bucket = requireServing(env, config);
  const url = new URL(request.url);
  const check = await checkAssetLink(
    assetPath(objectKey),
    url.searchParams.get("exp") ?? undefined,
    url.searchParams.get("sig") ?? undefined,
    config.assetSigningSecret!,
    Math.floor(Date.now() / 1000),
  );
  if (check === "invalid") throw new ApiError("asset_link_invalid", "the link's signature is not valid");
  if (check === "expired")
    throw new ApiError("asset_link_expired", "the link has expired: ask for the task again");
  const tenantId = objectKey.split("/")[1]!;
  return serveStoredFile(env.DB, bucket, request, objectKey, tenantId, waitUntil);
}

/**
 * GET /assets/c/{token}/{name}: a capability link. The token (128 random bits, stored with the
 * file) is the whole secret; an unknown one, or a file deleted by retention, is 404 at once
 * (D1 is asked before the edge cache).
 */
export async function serveCapabilityAsset(
  env: AssetEnv,
  config: GatewayConfig,
  request: Request,
  token: string,
  waitUntil: (promise: Promise<unknown>) => void,
): Promise<Response> {
  const bucket = requireServing(env, config);
  const file = isCapabilityToken(token) ? await fileByCapability(env.DB, token) : null;
  if (!file) throw new ApiError("asset_not_found", "no such file");
  return serveStoredFile(env.DB, bucket, request, file.object_key, file.tenant_id, waitUntil);
}

function requireServing(env: AssetEnv, config: GatewayConfig): R2Bucket {
  if (!config.assetSigningSecret || !env.ASSETS_BUCKET) {
    const missing = config.assetSigningSecret ? "ASSETS_BUCKET" : "ASSET_SIGNING_SECRET";
    logEvent("configuration_error", { missing_setting: missing, message: `hosted results need ${missing}` });
    throw new ApiError("configuration_error", `the gateway is misconfigured: ${missing} is not set`);
  }
  return env.ASSETS_BUCKET;
}

/** A file whose link has been checked, from the Workers cache or R2; its bytes counted for the tenant. */
async function serveStoredFile(
  db: D1Database,
  bucket: R2Bucket,
  request: Request,
  objectKey: string,
  tenantId: string,
  waitUntil: (promise: Promise<unknown>) => void,
): Promise<Response> {
  const response = await answerFromStorage(bucket, request, objectKey, waitUntil);
  if (request.method === "GET" && (response.status === 200 || response.status === 206)) {
    const bytes = Number(response.headers.get("content-length") ?? 0);
    countServedBytes(db, tenantId, bytes, Date.now(), waitUntil);
  }
  return response;
}

/** One `Range` honoured (206/416); only whole files go into the cache, keyed by the object. */
async function answerFromStorage(
  bucket: R2Bucket,
  request: Request,
  objectKey: string,
  waitUntil: (promise: Promise<unknown>) => void,
): Promise<Response> {
  const url = new URL(request.url);
  const range = request.headers.get("range");
  const cache = (globalThis as { caches?: { default?: Cache } }).caches?.default;
  const cacheKey = new Request(`${url.origin}${assetPath(objectKey)}`);
  if (!range && cache) {
    const hit = await cache.match(cacheKey).catch(() => undefined);
    if (hit) return withConditional(request, hit);
  }
  const head = await bucket.head(objectKey);
  if (!head) throw new ApiError("asset_not_found", "no such file");
  const notModified = request.headers.get("if-none-match");
  if (notModified && notModified === head.httpEtag) {
    return new Response(null, { status: 304, headers: fileHeaders(head) });
  }
  const span = parseByteRange(range, head.size);
  if (span === "unsatisfiable") {
    return new Response(null, {
      status: 416,
      headers: { ...fileHeaders(head), "content-range": `bytes */${head.size}` },
    });
  }
  const object = await bucket.get(objectKey, span === "whole" ? {} : { range: span });
  if (!object) throw new ApiError("asset_not_found", "no such file");
  if (span !== "whole") {
    return new Response(object.body, {
      status: 206,
      headers: {
        ...fileHeaders(head),
        "content-length": String(span.length),
        "content-range": `bytes ${span.offset}-${span.offset + span.length - 1}/${head.size}`,
      },
    });
  }
  const response = new Response(object.body, {
    headers: { ...fileHeaders(head), "content-length": String(head.size) },
  });
  if (cache && request.method === "GET" && head.size <= MAX_CACHED_BYTES) {
    // The edge copy lives a day, so a file deleted by retention stops being served soon after.
    const edgeCopy = new Response(response.clone().body, response);
    edgeCopy.headers.set("cache-control", EDGE_CACHE);
    waitUntil(cache.put(cacheKey, edgeCopy).catch(() => {}));
  }
  return response;
}

const EDGE_CACHE = "public, max-age=86400";

/** Larger files are served from R2 each time: the cache's tee would hold them while one side lags. */
const MAX_CACHED_BYTES = 32 * 1024 * 1024;

function fileHeaders(object: R2Object): Record<string, string> {
  return {
    "content-type": object.httpMetadata?.contentType ?? "application/octet-stream",
    etag: object.httpEtag,
    "cache-control": IMMUTABLE_CACHE,
    "accept-ranges": "bytes",
  };
}

/** A cache hit as clients get it: immutable (the edge copy's shorter lifetime is ours), or a 304. */
function withConditional(request: Request, cached: Response): Response {
  const headers = new Headers(cached.headers);
  headers.set("cache-control", IMMUTABLE_CACHE);
  const etag = cached.headers.get("etag");
  if (etag && request.headers.get("if-none-match") === etag) {
    void cached.body?.cancel();
    return new Response(null, { status: 304, headers });
  }
  return new Response(cached.body, { status: cached.status, headers });
}

/** The cron: deletes files past their tenant's retention from R2, then their rows. Returns how many. */
export async function purgeExpiredAssets(env: AssetEnv, now: number, maxBatches = 20): Promise<number> {
  if (!env.ASSETS_BUCKET) return 0;
  let deleted = 0;
  for (let batch = 0; batch < maxBatches; batch++) {
    const keys = await expiredAssetFiles(env.DB, now, 500);
    if (!keys.length) break;
    await env.ASSETS_BUCKET.delete(keys);
    await forgetAssetFiles(env.DB, keys);
    deleted += keys.length;
    if (keys.length < 500) break;
  }
  if (deleted) logEvent("assets_purged", { files: deleted });
  return deleted;
}
