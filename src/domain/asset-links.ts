/**
 * Hosted results (issue 14), the pure part: which strings of an upstream result are files,
 * where each is stored, how a gateway link to it is signed and checked, and how a task's
 * result is shown with those links in place of the upstream's URLs.
 *
 * A link is `{origin}/assets/{object key}?exp={unix seconds}&sig={HMAC-SHA256(path "\n" exp)}`:
 * the signature covers the path (so the tenant and task in it) and the expiry, nothing else.
 */
import { base64Url, fromBase64Url, randomToken } from "./ids";

/** Where a hosted file lives in the bucket; the path after `/assets/` in its link. */
export const assetObjectKey = (tenantId: string, taskId: string, name: string) =>
  `t/${tenantId}/${taskId}/${name}`;

/** The path the signature covers for an object key. */
export const assetPath = (objectKey: string) => `/assets/${objectKey}`;

/** Every distinct string of the result that is a whole http(s) URL: the files to copy, in order. */
export function resultFileUrls(result: unknown): string[] {
  const urls = new Set<string>();
  const walk = (value: unknown) => {
    if (typeof value === "string") {
      if (isFileUrl(value)) urls.add(value);
    } else if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === "object") Object.values(value).forEach(walk);
  };
  walk(result);
  return [...urls];
}

function isFileUrl(text: string): boolean {
  if (!/^https?:\/\/\S+$/i.test(text)) return false;
  try {
    new URL(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * A safe, distinct file name per URL: the last path segment (`grid.png`, `video_0.mp4`),
 * reduced to [A-Za-z0-9._-]; a blank or repeated one gets its position as a prefix.
 */
export function fileNamesFor(urls: string[]): string[] {
  const used = new Set<string>();
  return urls.map((url, index) => {
    const segment = decodeSegment(new URL(url).pathname.split("/").pop() ?? "");
    let name = segment
      .replace(/[^A-Za-z0-9._-]/g, "_")
      .replace(/^\.+/, "")
      .slice(0, 100);
    if (!name || used.has(name)) name = `${index}_${name || "file"}`;
    used.add(name);
    return name;
  });
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** The result with every string equal to a key of `links` replaced by its link (deeply). */
export function withLinks<T>(value: T, links: Readonly<Record<string, string>>): T {
  const swap = (v: unknown): unknown => {
    if (typeof v === "string") return Object.hasOwn(links, v) ? links[v] : v;
    if (Array.isArray(v)) return v.map(swap);
    if (v && typeof v === "object")
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, swap(x)]));
    return v;
  };
  return swap(value) as T;
}

const encoder = new TextEncoder();

async function hmacKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
    "verify",
  ]);
}

const signedText = (path: string, exp: number) => encoder.encode(`${path}\n${exp}`);

/** The signed link to an object, valid until `exp` (unix seconds). */
export async function signAssetLink(origin: string, objectKey: string, exp: number, secret: string) {
  const path = assetPath(objectKey);
  const signature = await crypto.subtle.sign("HMAC", await hmacKey(secret), signedText(path, exp));
  return `${origin}${path}?exp=${exp}&sig=${base64Url(new Uint8Array(signature))}`;
}

export type AssetLinkCheck = "valid" | "invalid" | "expired";

/** Checks a link's `exp` and `sig` for `path` (as requested, `/assets/…`); the signature first. */
export async function checkAssetLink(
  path: string,
  exp: string | undefined,
  sig: string | undefined,
  secret: string,
  nowSeconds: number,
): Promise<AssetLinkCheck> {
  if (!exp || !sig || !/^\d{1,12}$/.test(exp)) return "invalid";
  let signature: Uint8Array;
  try {
    signature = fromBase64Url(sig);
  } catch {
    return "invalid";
  }
  // Only the canonical spelling: base64 forgives spare bits, which would give one link many forms.
  if (base64Url(signature) !== sig) return "invalid";
  const expiry = Number(exp);
  const valid = await crypto.subtle.verify(
    "HMAC",
    await hmacKey(secret),
    signature,
    signedText(path, expiry),
  );
  if (!valid) return "invalid";
  return expiry <= nowSeconds ? "expired" : "valid";
}

/** One `Range` header against a size: the byte span, "whole" (absent, several ranges, other units) or unsatisfiable. */
export function parseByteRange(
  header: string | null,
  size: number,
): { offset: number; length: number } | "whole" | "unsatisfiable" {
  if (!header) return "whole";
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === "" && match[2] === "")) return "whole";
  if (match[1] === "") {
    const suffix = Number(match[2]);
    if (suffix === 0) return "unsatisfiable";
    const length = Math.min(suffix, size);
    return { offset: size - length, length };
  }
  const start = Number(match[1]);
  const end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size || end < start) return "unsatisfiable";
  return { offset: start, length: end - start + 1 };
}

/** 16 random bytes (128 bits) as base64url: a capability link's whole secret. */
export const newCapabilityToken = () => randomToken(16);
export const isCapabilityToken = (text: string) => /^[A-Za-z0-9_-]{22}$/.test(text);

/** A capability link: the token is the only secret, the name only gives browsers a file type. */
export const capabilityLink = (origin: string, token: string, name: string) =>
  `${origin}/assets/c/${token}/${name}`;

/** A link into this gateway's hosted files, as a tenant may send one back as an input. */
export type OwnAssetLink =
  | { kind: "signed"; path: string; objectKey: string; tenantId: string; exp?: string; sig?: string }
  | { kind: "capability"; token: string }
  | { kind: "malformed" };

/** URLs under `{origin}/assets/` anywhere in a text (a prompt holds image URLs among words). */
const ownAssetLinkPattern = (origin: string) =>
  new RegExp(`${origin.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}/assets/[^\\s"'<>]*`, "g");

/** Every substring of `text` that is a URL under `{origin}/assets/`, in order. */
export const ownAssetLinksIn = (text: string, origin: string): string[] =>
  text.match(ownAssetLinkPattern(origin)) ?? [];

/** The text with each such URL replaced by `replace(url)`. */
export const replaceOwnAssetLinks = (text: string, origin: string, replace: (link: string) => string) =>
  text.replace(ownAssetLinkPattern(origin), replace);

export function parseOwnAssetLink(link: string): OwnAssetLink {
  let url: URL;
  try {
    url = new URL(link);
  } catch {
    return { kind: "malformed" };
  }
  const parts = url.pathname.split("/");
  // "", "assets", "t", tenant, task, name  |  "", "assets", "c", token, name
  if (parts.length === 6 && parts[2] === "t") {
    return {
      kind: "signed",
      path: url.pathname,
      objectKey: parts.slice(2).join("/"),
      tenantId: parts[3]!,
      exp: url.searchParams.get("exp") ?? undefined,
      sig: url.searchParams.get("sig") ?? undefined,
    };
  }
  if (parts.length === 5 && parts[2] === "c" && isCapabilityToken(parts[3]!)) {
    return { kind: "capability", token: parts[3]! };
  }
  return { kind: "malformed" };
}
