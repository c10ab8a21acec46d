/**
 * A tenant feeding a hosted result back in (issue 14): image inputs that point at this
 * gateway's `/assets/…` are checked and replaced, in the body the upstream gets, by a fresh
 * signed link of short lifetime. A tenant's own link works even after it expired (the
 * upstream gets a new one); a tampered or unknown link, or another tenant's file, is a 400
 * naming the field, before any money moves.
 */
import { fileByCapability } from "../db/assets";
import {
  checkAssetLink,
  ownAssetLinksIn,
  parseOwnAssetLink,
  replaceOwnAssetLinks,
  signAssetLink,
} from "../domain/asset-links";
import { ApiError } from "../domain/errors";
import type { Env, GatewayConfig } from "../env";

/** Long enough for the upstream to fetch its inputs (it does at submit, or when a queued job starts). */
export const INPUT_LINK_TTL_SECONDS = 3_600;

/**
 * The body with every own-asset link in its strings (fields and prompt alike) replaced;
 * `metadata` is the tenant's own and is left as sent. The body itself when there is none.
 */
export async function resolveAssetInputs<T extends Record<string, unknown>>(
  env: Pick<Env, "DB">,
  config: GatewayConfig,
  tenantId: string,
  body: T,
  now: number,
): Promise<T> {
  const origin = config.publicBaseUrl;
  const secret = config.assetSigningSecret;
  if (!origin || !secret) return body;
  const replacements = new Map<string, string>();
  for (const [field, value] of Object.entries(body)) {
    if (field === "metadata") continue;
    for (const link of linksIn(value, origin)) {
      if (!replacements.has(link)) {
        replacements.set(link, await freshLink(env.DB, origin, secret, tenantId, field, link, now));
      }
    }
  }
  if (!replacements.size) return body;
  const swap = (value: unknown): unknown => {
    if (typeof value === "string") {
      return replaceOwnAssetLinks(value, origin, (link) => replacements.get(link) ?? link);
    }
    if (Array.isArray(value)) return value.map(swap);
    return value;
  };
  return Object.fromEntries(
    Object.entries(body).map(([field, value]) => [field, field === "metadata" ? value : swap(value)]),
  ) as T;
}

function linksIn(value: unknown, origin: string): string[] {
  if (typeof value === "string") return ownAssetLinksIn(value, origin);
  if (Array.isArray(value)) return value.flatMap((item) => linksIn(item, origin));
  return [];
}

async function freshLink(
  db: D1Database,
  origin: string,
  secret: string,
  tenantId: string,
  field: string,
  link: string,
  now: number,
): Promise<string> {
  const parsed = parseOwnAssetLink(link);
  let objectKey: string;
  let owner: string;
  if (parsed.kind === "signed") {
    const check = await checkAssetLink(parsed.path, parsed.exp, parsed.sig, secret, Math.floor(now / 1000));
    if (check === "invalid") {
      throw new ApiError("asset_input_invalid", `${field}: the hosted file link's signature is not valid`, {
        field,
      });
    }
    objectKey = parsed.objectKey;
    owner = parsed.tenantId;
  } else if (parsed.kind === "capability") {
    const file = await fileByCapability(db, parsed.token);
    if (!file) throw new ApiError("asset_input_invalid", `${field}: no such hosted file`, { field });
    objectKey = file.object_key;
    owner = file.tenant_id;
  } else {
    throw new ApiError("asset_input_invalid", `${field}: not a link to a hosted file`, { field });
  }
  if (owner !== tenantId) {
    throw new ApiError("asset_input_not_yours", `${field}: the hosted file belongs to another tenant`, {
      field,
    });
  }
  return signAssetLink(origin, objectKey, Math.floor(now / 1000) + INPUT_LINK_TTL_SECONDS, secret);
}
