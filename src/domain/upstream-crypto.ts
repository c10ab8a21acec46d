/**
 * Upstream API keys at rest: AES-GCM-256 under a key derived (HKDF-SHA-256) from
 * UPSTREAM_KEY_SECRET, a fresh 96-bit IV per seal, and the upstream's id as associated data
 * so a ciphertext copied onto another row does not open. Only the last four characters are
 * kept in clear, to tell keys apart in the operator's list.
 */
import { base64Url, fromBase64Url } from "./ids";

/** An encrypted key as stored: ciphertext and IV (base64url) and the clear last four characters. */
export interface SealedKey {
  ciphertext: string;
  iv: string;
  hint: string;
}

export const keyHint = (apiKey: string) => apiKey.slice(-4);

const encoder = new TextEncoder();

async function aesKeyFrom(secret: string): Promise<CryptoKey> {
  const material = await crypto.subtle.importKey("raw", encoder.encode(secret), "HKDF", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    {
      name: "HKDF",
      hash: "SHA-256",
      salt: new Uint8Array(0),
      info: encoder.encode("mj-gateway upstream api key"),
    },
    material,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

export async function sealKey(secret: string, upstreamId: string, apiKey: string): Promise<SealedKey> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ciphertext = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: encoder.encode(upstreamId) },
    await aesKeyFrom(secret),
    encoder.encode(apiKey),
  );
  return { ciphertext: base64Url(new Uint8Array(ciphertext)), iv: base64Url(iv), hint: keyHint(apiKey) };
}

/** The clear key; throws when the secret, the row id or the ciphertext do not match. */
export async function openKey(
  secret: string,
  upstreamId: string,
  sealed: Pick<SealedKey, "ciphertext" | "iv">,
): Promise<string> {
  const clear = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: fromBase64Url(sealed.iv), additionalData: encoder.encode(upstreamId) },
    await aesKeyFrom(secret),
    fromBase64Url(sealed.ciphertext),
  );
  return new TextDecoder().decode(clear);
}
