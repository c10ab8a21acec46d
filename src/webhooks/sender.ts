import type { AttemptResult, DeliveryRow } from "../db/webhooks";
import { nextAttemptDelayMs, signWebhook } from "../domain/webhooks";

const TIMEOUT_MS = 10_000;

/**
 * One signed POST of a webhook message. Any 2xx counts as delivered. The attempt's `at` is
 * read from the caller's clock (a task's own), so it and the retry due after it share one
 * timeline; the signature's timestamp is wall time, which the receiver checks against its own.
 */
export async function sendWebhook(
  target: { url: string; secret: string },
  message: { id: string; payload: string },
  { fetcher = fetch, now = Date.now }: { fetcher?: typeof fetch; now?: () => number } = {},
): Promise<AttemptResult> {
  const at = now();
  const started = Date.now();
  const timestamp = Math.floor(started / 1000);
  try {
    const response = await fetcher(target.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": "mj-gateway-webhooks/1",
        "webhook-id": message.id,
        "webhook-timestamp": String(timestamp),
        "webhook-signature": await signWebhook(target.secret, message.id, timestamp, message.payload),
      },
      body: message.payload,
      redirect: "manual",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    await response.body?.cancel();
    const ok = response.status >= 200 && response.status < 300;
    return {
      status: response.status,
      error: ok ? null : `HTTP ${response.status}`,
      durationMs: Date.now() - started,
      at,
    };
  } catch (error) {
    const name = error instanceof Error ? error.name : "";
    const reason = name === "TimeoutError" || name === "AbortError" ? "timeout" : "connection failed";
    return { status: null, error: reason, durationMs: Date.now() - started, at };
  }
}

export const delivered = (result: AttemptResult) =>
  result.status !== null && result.status >= 200 && result.status < 300;

/** What a delivery becomes after an attempt: its status and when the next attempt is due. */
export interface DeliveryProgress {
  status: DeliveryRow["status"];
  nextAttemptAt: number | null;
}

/**
 * The retry policy, for the task's automatic attempts: delivered on a 2xx; otherwise the
 * next attempt follows the schedule (RETRY_SCHEDULE_SECONDS) from this one, until it ends.
 */
export function afterAttempt(result: AttemptResult, attemptsMade: number): DeliveryProgress {
  if (delivered(result)) return { status: "delivered", nextAttemptAt: null };
  const retryIn = nextAttemptDelayMs(attemptsMade);
  return retryIn === null
    ? { status: "failed", nextAttemptAt: null }
    : { status: "pending", nextAttemptAt: result.at + retryIn };
}

/**
 * The same policy for an operator's replay: it may deliver, but never revives a delivery
 * that gave up or succeeded, and a pending one keeps its scheduled retry (the first of the
 * schedule if it had none yet).
 */
export function afterReplay(
  result: AttemptResult,
  delivery: Pick<DeliveryRow, "status" | "next_attempt_at">,
): DeliveryProgress {
  if (delivered(result)) return { status: "delivered", nextAttemptAt: null };
  if (delivery.status !== "pending") return { status: delivery.status, nextAttemptAt: null };
  return {
    status: "pending",
    nextAttemptAt: delivery.next_attempt_at ?? afterAttempt(result, 1).nextAttemptAt,
  };
}
