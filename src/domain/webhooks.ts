import { ulid } from "./ids";
import { publicUrlProblem } from "./public-url";

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

/** At most this many active webhook endpoints per tenant (more → 409 webhook_endpoint_limit). */
export const MAX_WEBHOOK_ENDPOINTS_PER_TENANT = 20;

/** A webhook body is at most 256 KiB (UTF-8); see webhookPayload for what happens over it. */
export const MAX_WEBHOOK_PAYLOAD_BYTES = 256 * 1024;
const MAX_TRUNCATED_FIELD_CHARS = 1024;

/**
 * The Standard Webhooks body: {type, timestamp, data: the task}. A task whose view is over
 * MAX_WEBHOOK_PAYLOAD_BYTES (large metadata or results) is sent truncated: data keeps only
 * its short scalar fields (id, status, progress, …) and the body says "truncated": true;
 * the receiver fetches the full task with GET /v1/tasks/{id}.
 */
export function webhookPayload(type: WebhookEventType, task: Record<string, unknown>, at: number): string {
  const timestamp = new Date(at).toISOString();
  const full = JSON.stringify({ type, timestamp, data: task });
  if (new TextEncoder().encode(full).byteLength <= MAX_WEBHOOK_PAYLOAD_BYTES) return full;
  const scalars = Object.fromEntries(
    Object.entries(task).filter(
      ([, value]) =>
        value === null ||
        typeof value === "number" ||
        typeof value === "boolean" ||
        (typeof value === "string" && value.length <= MAX_TRUNCATED_FIELD_CHARS),
    ),
  );
  return JSON.stringify({ type, timestamp, truncated: true, data: scalars });
}

/**
 * Webhook URLs must be public https URLs (the shared rules of ./public-url), except
 * loopback over http(s) in local development.
 */
export function webhookUrlProblem(raw: string, allowLoopback: boolean): string | null {
  return publicUrlProblem(raw, { schemes: ["https:"], allowLoopback });
}
