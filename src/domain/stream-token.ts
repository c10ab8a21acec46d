import { logEvent } from "../log";
import { ApiError } from "./errors";
import { base64Url, fromBase64Url } from "./ids";

/**
 * Short-lived signed tokens that let a browser's EventSource open a stream without the
 * sub-key: `v1.<payload>.<HMAC-SHA256 signature>`, scoped to a tenant and optionally to
 * a set of task ids.
 */
export interface StreamTokenClaims {
  tenantId: string;
  taskIds: string[] | null;
  /** Expiry, unix seconds. */
  exp: number;
  /** The sub-key that minted it (none for operator-minted tokens): revoking that key ends the token. */
  keyId?: string | null;
}

export type TokenCheck =
  | { ok: true; claims: StreamTokenClaims }
  | { ok: false; reason: "malformed" | "bad_signature" | "expired" };

export const MAX_TTL_SECONDS = 24 * 3600;
const encoder = new TextEncoder();

async function hmacKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
    "verify",
  ]);
}

export async function signStreamToken(claims: StreamTokenClaims, secret: string): Promise<string> {
  const payload = base64Url(
    encoder.encode(
      JSON.stringify({
        t: claims.tenantId,
        k: claims.taskIds ?? undefined,
        e: claims.exp,
        m: claims.keyId ?? undefined,
      }),
    ),
  );
  const signature = await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(`v1.${payload}`));
  return `v1.${payload}.${base64Url(new Uint8Array(signature))}`;
}

export async function verifyStreamToken(
  token: string,
  secret: string,
  nowSeconds: number,
): Promise<TokenCheck> {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[0] !== "v1") return { ok: false, reason: "malformed" };
  let signature: Uint8Array;
  let claims: { t?: unknown; k?: unknown; e?: unknown; m?: unknown };
  try {
    signature = fromBase64Url(parts[2]!);
    const payload = fromBase64Url(parts[1]!);
    // Only the canonical spelling: base64 decoding forgives spare bits, padding and
    // whitespace, which would give one signed token many accepted strings.
    if (base64Url(signature) !== parts[2] || base64Url(payload) !== parts[1]) {
      return { ok: false, reason: "malformed" };
    }
    claims = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    return { ok: false, reason: "malformed" };
  }
  // crypto.subtle.verify compares in constant time.
  const valid = await crypto.subtle.verify(
    "HMAC",
    await hmacKey(secret),
    signature,
    encoder.encode(`v1.${parts[1]}`),
  );
  if (!valid) return { ok: false, reason: "bad_signature" };
  if (typeof claims.t !== "string" || typeof claims.e !== "number") return { ok: false, reason: "malformed" };
  if (claims.e <= nowSeconds) return { ok: false, reason: "expired" };
  const taskIds = Array.isArray(claims.k) ? claims.k.map(String) : null;
  const keyId = typeof claims.m === "string" ? claims.m : null;
  return { ok: true, claims: { tenantId: claims.t, taskIds, exp: claims.e, keyId } };
}

/**
 * The signing secret: STREAM_TOKEN_SECRET. Outside development it is required: without it the
 * request that needs it fails with a 500 `configuration_error` and one log line naming the
 * secret, never a guessable fallback. In development (`npm start`, which also writes one into
 * .dev.vars) a missing secret is derived from the admin token with a label.
 */
export function streamTokenSecret(env: {
  STREAM_TOKEN_SECRET?: string;
  ADMIN_TOKEN?: string;
  ENVIRONMENT?: string;
}): string {
  if (env.STREAM_TOKEN_SECRET) return env.STREAM_TOKEN_SECRET;
  if (env.ENVIRONMENT === "development") return `stream-tokens:development:${env.ADMIN_TOKEN ?? ""}`;
  logEvent("configuration_error", {
    missing_secret: "STREAM_TOKEN_SECRET",
    message:
      "set it with `wrangler secret put STREAM_TOKEN_SECRET` (required unless ENVIRONMENT=development)",
  });
  throw new ApiError(
    "configuration_error",
    "the gateway is misconfigured: the STREAM_TOKEN_SECRET secret is not set",
  );
}
