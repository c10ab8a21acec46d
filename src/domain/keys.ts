import { randomToken } from "./ids";

/**
 * Sub-keys look like `sk-mjg-<8-char prefix>-<32 random bytes>`. The prefix lets people
 * recognise a key in logs and lists; only the SHA-256 of the whole key is stored.
 */
export const KEY_MARKER = "sk-mjg-";

export interface MintedKey {
  secret: string;
  prefix: string;
}

export function mintKey(): MintedKey {
  const prefix = randomToken(6).replace(/[-_]/g, "x").slice(0, 8);
  return { secret: `${KEY_MARKER}${prefix}-${randomToken(32)}`, prefix: `${KEY_MARKER}${prefix}` };
}

/**
 * Exactly what mintKey makes: the marker, 8 letters or digits, a dash and 32 random bytes in
 * base64url (43 characters). Anything else cannot be a key: refused without hashing or D1.
 */
export const SUB_KEY_PATTERN = /^sk-mjg-[A-Za-z0-9]{8}-[A-Za-z0-9_-]{43}$/;

export function looksLikeSubKey(value: string): boolean {
  return SUB_KEY_PATTERN.test(value);
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Compares two strings without leaking where they differ through timing. */
export function timingSafeEqual(a: string, b: string): boolean {
  const left = new TextEncoder().encode(a);
  const right = new TextEncoder().encode(b);
  let diff = left.length ^ right.length;
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    diff |= (left[i % Math.max(left.length, 1)] ?? 0) ^ (right[i % Math.max(right.length, 1)] ?? 0);
  }
  return diff === 0;
}
