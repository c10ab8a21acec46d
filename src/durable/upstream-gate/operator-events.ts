/**
 * The gate's outbox of operator events: a circuit transition becomes a Standard Webhooks
 * message to OPERATOR_WEBHOOK_URL. The message is stored in the gate's SQLite in the same
 * synchronous step as the transition itself, so it exists before any delivery is tried; the
 * gate's alarm delivers it and retries on the tenant webhooks' schedule (RETRY_SCHEDULE_SECONDS,
 * ~27 h in all) with the same webhook-id every time, so a receiver can drop a repeat.
 */

import { ulid } from "../../domain/ids";
import type { HealthTransition } from "../../domain/upstream-health";
import { MAX_ATTEMPTS } from "../../domain/webhooks";
import { logEvent } from "../../log";
import { afterAttempt, sendWebhook } from "../../webhooks/sender";

export interface OperatorTarget {
  url: string;
  secret: string;
}

export type OperatorEventType = HealthTransition["type"];

/** The message body: {type, timestamp, data}, as the tenant webhooks. */
export function operatorEventPayload(upstreamId: string, transition: HealthTransition): string {
  const data =
    transition.type === "upstream.unhealthy"
      ? {
          upstream_id: upstreamId,
          circuit: "open",
          window_samples: transition.samples,
          window_errors: transition.errors,
          last_error: transition.lastError,
        }
      : { upstream_id: upstreamId, circuit: "closed" };
  return JSON.stringify({ type: transition.type, timestamp: new Date(transition.at).toISOString(), data });
}

export class OperatorEvents {
  constructor(
    private readonly sql: SqlStorage,
    private readonly fetcher: typeof fetch = (input, init) => fetch(input, init),
  ) {
    sql.exec(
      `CREATE TABLE IF NOT EXISTS operator_outbox (id TEXT PRIMARY KEY, type TEXT NOT NULL, payload TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL, last_error TEXT)`,
    );
  }

  /** Stores the message, due now; returns when the outbox next needs the alarm. */
  enqueue(upstreamId: string, transition: HealthTransition, now: number): number {
    this.sql.exec(
      "INSERT INTO operator_outbox (id, type, payload, next_at) VALUES (?1, ?2, ?3, ?4)",
      `msg_${ulid()}`,
      transition.type,
      operatorEventPayload(upstreamId, transition),
      now,
    );
    return this.nextDue()!;
  }

  /**
   * Tries every message due at `now`, oldest first; a delivered one is deleted, a failed one
   * waits for its next attempt or, past the schedule, is dropped with a log line. Returns
   * when the alarm is needed next (null: the outbox is empty).
   */
  async deliverDue(now: number, target: OperatorTarget | undefined): Promise<number | null> {
    const due = this.sql
      .exec<{ id: string; type: string; payload: string; attempts: number }>(
        "SELECT id, type, payload, attempts FROM operator_outbox WHERE next_at <= ?1 ORDER BY next_at, id",
        now,
      )
      .toArray();
    for (const message of due) {
      if (!target) {
        // The operator removed the endpoint: nobody is left to tell.
        this.sql.exec("DELETE FROM operator_outbox WHERE id = ?1", message.id);
        logEvent("operator_webhook_dropped", {
          message_id: message.id,
          type: message.type,
          reason: "no endpoint",
        });
        continue;
      }
      const result = await sendWebhook(target, message, { fetcher: this.fetcher, now: () => now });
      const attempts = message.attempts + 1;
      const progress = afterAttempt(result, attempts);
      const fields = { message_id: message.id, type: message.type, attempt: attempts, status: result.status };
      if (progress.status === "pending") {
        this.sql.exec(
          "UPDATE operator_outbox SET attempts = ?2, next_at = ?3, last_error = ?4 WHERE id = ?1",
          message.id,
          attempts,
          progress.nextAttemptAt,
          result.error,
        );
        logEvent("operator_webhook_retry", {
          ...fields,
          error: result.error,
          next_at: progress.nextAttemptAt,
        });
      } else {
        this.sql.exec("DELETE FROM operator_outbox WHERE id = ?1", message.id);
        logEvent(progress.status === "delivered" ? "operator_webhook_delivered" : "operator_webhook_failed", {
          ...fields,
          error: result.error,
          max_attempts: MAX_ATTEMPTS,
        });
      }
    }
    return this.nextDue();
  }

  /** What is waiting, for the operator's view and tests. */
  pending(): { id: string; type: string; attempts: number; next_at: number; last_error: string | null }[] {
    return this.sql
      .exec<{ id: string; type: string; attempts: number; next_at: number; last_error: string | null }>(
        "SELECT id, type, attempts, next_at, last_error FROM operator_outbox ORDER BY next_at, id",
      )
      .toArray();
  }

  private nextDue(): number | null {
    return this.sql.exec<{ at: number | null }>("SELECT MIN(next_at) AS at FROM operator_outbox").one().at;
  }
}
