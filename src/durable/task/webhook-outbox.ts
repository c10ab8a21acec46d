/**
 * The task's webhook outbox. Each published change becomes one message here, in the same
 * step as its event; the pump fans each message out to the tenant's endpoints (one D1
 * delivery row per endpoint, idempotent by message key) and attempts every due delivery.
 * Pending deliveries live in storage with their next attempt time, which the scheduler
 * arms the alarm for; the retry policy is `afterAttempt` (shared with the replay route).
 *
 * Only tasks of tenants with endpoints use it (`inUse`): its tables are created by the first
 * message, and a task without webhooks never reads them.
 */
import { createDeliveries, endpointsFor, recordAttempt, settledDeliveryIds } from "../../db/webhooks";
import { isTerminal, type TaskState } from "../../domain/task-machine";
import { eventTypeFor, webhookPayload } from "../../domain/webhooks";
import { logEvent } from "../../log";
import { afterAttempt, sendWebhook } from "../../webhooks/sender";
import type { Clock } from "./clock";
import type { TaskSchema } from "./storage-schema";

/** Whose task the messages are about. */
export interface OutboxTask {
  taskId: string;
  tenantId: string;
  keyId: string;
}

interface PendingDelivery {
  id: string;
  url: string;
  secret: string;
  payload: string;
  attempts: number;
}

export interface OutboxHooks {
  /** The pump failed (D1 unavailable, say): the next alarm should wait a little. */
  backOff(): void;
  /** The pump finished: arm the alarm for the next due delivery. */
  rearm(): void;
  /** The task publishes to webhooks (it never stops once it does; before, nothing is queued). */
  inUse(): boolean;
}

export class WebhookOutbox {
  /** Webhook work runs one pump at a time, so no delivery is attempted twice at once. */
  private pumping: Promise<void> = Promise.resolve();

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly schema: TaskSchema,
    private readonly db: D1Database,
    private readonly clock: Clock,
    private readonly hooks: OutboxHooks,
  ) {}

  /** One message for the change published as event `seq`. */
  enqueue(seq: number, status: string, at: number, data: Record<string, unknown>): void {
    this.schema.ensureWebhookTables();
    this.storage.sql.exec(
      "INSERT INTO outbox (seq, status, at, payload) VALUES (?1, ?2, ?3, ?4)",
      seq,
      status,
      at,
      webhookPayload(eventTypeFor(status), data, at),
    );
  }

  /** When the next pending delivery is due (null: none pending). */
  nextAttemptAt(): number | null {
    if (!this.opened()) return null;
    return this.storage.sql.exec<{ at: number | null }>("SELECT MIN(next_at) AS at FROM deliveries").one().at;
  }

  /** Nothing left to fan out or deliver (retention waits for this). */
  isEmpty(): boolean {
    if (!this.opened()) return true;
    return (
      this.storage.sql.exec("SELECT 1 FROM deliveries UNION ALL SELECT 1 FROM outbox LIMIT 1").toArray()
        .length === 0
    );
  }

  /**
   * Fans new messages out and attempts every delivery due at `now`, after any pump still
   * running. `taskOf` is read when this pump starts (the task may be gone by then).
   */
  pump(taskOf: () => OutboxTask | null, now?: number): Promise<void> {
    this.pumping = this.pumping
      .then(() => {
        const task = taskOf();
        return task ? this.work(task, now ?? this.clock.now()) : undefined;
      })
      .catch((error) => {
        this.hooks.backOff();
        logEvent("webhook_pump_failed", { task_id: taskOf()?.taskId, error: String(error) });
      })
      .finally(() => this.hooks.rearm());
    return this.pumping;
  }

  private async work(task: OutboxTask, now: number): Promise<void> {
    if (!this.opened()) return;
    await this.fanOut(task);
    const due = this.storage.sql
      .exec<{ id: string; url: string; secret: string; payload: string; attempts: number }>(
        "SELECT id, url, secret, payload, attempts FROM deliveries WHERE next_at <= ?1 ORDER BY next_at",
        now,
      )
      .toArray();
    // A retry whose message an operator's replay has delivered meanwhile is dropped, not resent.
    const retries = due.filter((delivery) => delivery.attempts > 0).map((delivery) => delivery.id);
    const settled = retries.length ? await settledDeliveryIds(this.db, retries) : new Set<string>();
    for (const id of settled) this.storage.sql.exec("DELETE FROM deliveries WHERE id = ?1", id);
    await Promise.all(
      due.filter((delivery) => !settled.has(delivery.id)).map((delivery) => this.attempt(task, delivery)),
    );
  }

  /** Each message becomes one delivery per endpoint, in D1 and here, then leaves the outbox. */
  private async fanOut(task: OutboxTask): Promise<void> {
    const messages = this.storage.sql
      .exec<{ seq: number; status: string; at: number; payload: string }>("SELECT * FROM outbox ORDER BY seq")
      .toArray();
    for (const message of messages) {
      const terminal = isTerminal(message.status as TaskState["status"]);
      const endpoints = await endpointsFor(this.db, task.tenantId, task.keyId, terminal);
      const rows = await createDeliveries(
        this.db,
        endpoints,
        {
          // Zero-padded so delivery ids sort in event order (the delivery log lists by id).
          messageKey: `${task.taskId.replace(/^task_/, "")}_${String(message.seq).padStart(6, "0")}`,
          taskId: task.taskId,
          eventType: eventTypeFor(message.status),
          payload: message.payload,
        },
        message.at,
      );
      this.storage.transactionSync(() => {
        for (const [i, row] of rows.entries()) {
          this.storage.sql.exec(
            "INSERT OR IGNORE INTO deliveries (id, url, secret, payload, attempts, next_at) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
            row.id,
            endpoints[i]!.url,
            endpoints[i]!.secret,
            row.payload,
            message.at,
          );
        }
        this.storage.sql.exec("DELETE FROM outbox WHERE seq = ?1", message.seq);
      });
    }
  }

  /**
   * Whether the outbox may hold anything, its tables then made sure of (a task that learned of
   * endpoints after its last change has none yet). Cheap when unused: one flag.
   */
  private opened(): boolean {
    if (!this.hooks.inUse()) return false;
    this.schema.ensureWebhookTables();
    return true;
  }

  private async attempt(task: OutboxTask, delivery: PendingDelivery): Promise<void> {
    const result = await sendWebhook(
      delivery,
      { id: delivery.id, payload: delivery.payload },
      { now: () => this.clock.now() },
    );
    const attempts = delivery.attempts + 1;
    const progress = afterAttempt(result, attempts);
    await recordAttempt(this.db, delivery.id, result, progress);
    if (progress.nextAttemptAt === null)
      this.storage.sql.exec("DELETE FROM deliveries WHERE id = ?1", delivery.id);
    else
      this.storage.sql.exec(
        "UPDATE deliveries SET attempts = ?2, next_at = ?3 WHERE id = ?1",
        delivery.id,
        attempts,
        progress.nextAttemptAt,
      );
    logEvent("webhook_attempt", {
      task_id: task.taskId,
      delivery_id: delivery.id,
      status: result.status,
      outcome: progress.status,
      attempt: attempts,
    });
  }
}
