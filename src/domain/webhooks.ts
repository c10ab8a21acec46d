import { ulid } from "./ids";

/**
 * Webhooks follow the Standard Webhooks scheme: headers webhook-id, webhook-timestamp
 * and webhook-signature = "v1,<base64 HMAC-SHA256 over `${id}.${timestamp}.${body}`>",
 * keyed with the base64 part of a "whsec_…" secret.
 */
export const newWebhookSecret = () =>
  `whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(24))))}`;
export const newEndpointId = () => `wh_${ulid()}`;

function secretBytes(secret: string): Uint8Array {
  const encoded = secret.startsWith("whsec_") ? secret.slice(6) : secret;
  try {
    return Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
  } catch {
    return new TextEncoder().encode(secret);
  }
}

export async function signWebhook(
  secret: string,
  id: string,
  timestamp: number,
  body: string,
): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    secretBytes(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${id}.${timestamp}.${body}`));
  return `v1,${btoa(String.fromCharCode(...new Uint8Array(mac)))}`;
}

/** What a receiver does: recompute and compare, within a tolerance for the timestamp. */
export async function verifyWebhook(
  secret: string,
  headers: { id: string; timestamp: string; signature: string },
  body: string,
  nowSeconds: number,
  toleranceSeconds = 300,
): Promise<boolean> {
  const timestamp = Number(headers.timestamp);
  if (!Number.isFinite(timestamp) || Math.abs(nowSeconds - timestamp) > toleranceSeconds) return false;
  const expected = await signWebhook(secret, headers.id, timestamp, body);
  return headers.signature.split(" ").some((candidate) => candidate === expected);
}

/** Seconds after the first attempt at which retries happen: exponential, past 24 h in all. */
export const RETRY_SCHEDULE_SECONDS = [5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800, 14400];
export const MAX_ATTEMPTS = RETRY_SCHEDULE_SECONDS.length + 1;

/** When attempt number `attempts + 1` is due (attempts already made), or null when it is time to give up. */
export function nextAttemptDelayMs(attemptsMade: number): number | null {
  const seconds = RETRY_SCHEDULE_SECONDS[attemptsMade - 1];
  return seconds === undefined ? null : seconds * 1000;
}

export type WebhookEventType = "task.updated" | "task.succeeded" | "task.failed" | "task.cancelled";

export function eventTypeFor(status: string): WebhookEventType {
  switch (status) {
    case "SUCCESS":
      return "task.succeeded";
    case "FAILURE":
      return "task.failed";
    case "CANCEL":
      return "task.cancelled";
    default:
      return "task.updated";
  }
}

export function webhookPayload(type: WebhookEventType, task: Record<string, unknown>, at: number): string {
  return JSON.stringify({ type, timestamp: new Date(at).toISOString(), data: task });
}

/**
 * Webhook URLs must be https and must not point at private, loopback or link-local
 * addresses, except loopback in local development. (Names that resolve to private
 * addresses cannot be checked from a Worker; Cloudflare's own egress does not reach them.)
 */
export function webhookUrlProblem(raw: string, allowLoopback: boolean): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "must be an absolute URL";
  }
  // A trailing dot names the same host ("localhost." is localhost), so it must not slip past.
  const host = url.hostname
    .toLowerCase()
    .replace(/^\[|\]$/g, "")
    .replace(/\.+$/, "");
  const loopback = isLoopback(host);
  if (loopback && allowLoopback)
    return url.protocol === "http:" || url.protocol === "https:" ? null : "must be http(s)";
  if (url.protocol !== "https:") return "must use https";
  if (url.username || url.password) return "must not contain credentials";
  if (loopback || isPrivate(host)) return "must not point at a private, loopback or link-local address";
  return null;
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host.endsWith(".localhost") || /^127\./.test(host) || host === "::1";
}

function isPrivate(host: string): boolean {
  if (/^(10\.|192\.168\.|169\.254\.|0\.)/.test(host) || host === "0.0.0.0") return true;
  const m172 = /^172\.(\d+)\./.exec(host);
  if (m172 && Number(m172[1]) >= 16 && Number(m172[1]) <= 31) return true;
  if (/^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./.test(host)) return true; // carrier-grade NAT
  if (/^(fc|fd)[0-9a-f]{2}:/.test(host) || /^fe[89ab][0-9a-f]:/.test(host)) return true;
  if (/^::ffff:/.test(host)) return true;
  return host.endsWith(".local") || host.endsWith(".internal") || !host.includes(".");
}
