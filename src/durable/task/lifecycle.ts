/**
 * The task's life: its record (meta, state machine state, outcomes) and the pure state
 * machine (src/domain/task-machine.ts, the one place that decides refunds) fed with
 * observations on the task's clock. What the machine asks for is carried out here: money
 * through the billing service, a poll through the forwarding part, every change published.
 *
 * The record is read and parsed once per entry point (`refresh`), then served from memory;
 * every save goes to storage and memory together, so both stay the same. A blank object (no
 * task was ever recorded here) reads as no task without touching storage.
 */
import { type Action, QUICK_ACTIONS } from "../../domain/actions";
import {
  type Effect,
  initialState,
  isTerminal,
  type MachineConfig,
  type Observation,
  type TaskState,
  transition,
} from "../../domain/task-machine";
import type { TaskMeta } from "../../domain/task-view";
import type { GatewayConfig } from "../../env";
import { logEvent } from "../../log";
import type { HostedAssets } from "../../services/assets";
import { recordLateUpstreamStatus, refundStep, settleAskingWebhooks } from "../../services/billing";
import type { Clock } from "./clock";
import type { SiblingAttachment, SubmitOutcome } from "./contract";
import { type TaskSchema, TOMBSTONE_KEY } from "./storage-schema";

export interface TaskRecord {
  meta: TaskMeta;
  state: TaskState;
  submitOutcome: SubmitOutcome | null;
  /** The answer to the /modal that continued this task, for idempotent replays of it. */
  modalOutcome?: SubmitOutcome | null;
  /** Lead of a `repeat` request: its siblings and, once the upstream answered, what each got. */
  siblings?: string[];
  attachments?: Array<{ taskId: string; attachment: SiblingAttachment; delivered: boolean }>;
  /** Sibling: the task whose object forwards for it. */
  leadTaskId?: string;
  /** Upstream jobs the answer carried beyond the tasks we charged for (flagged in reconciliation). */
  unpricedUpstreamJobs?: number;
  /** Hosted tenants: links to the result files copied to R2 (src/durable/task/asset-hosting.ts). */
  assets?: HostedAssets;
  /** The pool member the task was submitted to (absent: `default`); polls and /modal go there. */
  upstreamId?: string;
  /** The task holds a slot (or a place in the queue) on its member's gate, released once at its terminal state. */
  holdsSlot?: boolean;
  /**
   * Every member was full: the task waits in `upstreamId`'s queue (NOT_START), its body kept
   * in storage, until the gate grants it a slot or it has waited past the bound.
   */
  queued?: QueuedPlace;
  /** What the client was told when the task was queued (an accepted submit), for idempotent replays. */
  queuedAnswer?: SubmitOutcome;
}

export interface QueuedPlace {
  /** On the task's clock. */
  since: number;
  position: number;
  requestId: string;
  /** The member waited on, as routing gave it (its cap is read again when the slot is asked for). */
  ignoreCircuit: boolean;
}

/** What the lifecycle asks of the rest of the object. */
export interface LifecycleHooks {
  /** The view changed at `at`: publish it (event log, tenant hub, webhooks). */
  changed(at: number): void;
  /** The task reached its terminal state. */
  ended(): void;
  /** Timers may have moved: re-arm the alarm. */
  arm(): void;
  /** The machine asks for a look at the upstream. */
  poll(record: TaskRecord): Promise<void>;
  /** Settlement found webhook endpoints for this task, which started without: send its terminal event. */
  webhooksFound?(): void;
  /** A SUCCESS is about to be published: put its result files in place first (hosted tenants). */
  beforeSuccess?(record: TaskRecord, result: Record<string, unknown>): Promise<void>;
}

export class TaskLifecycle {
  /** undefined: not read yet; null: no task here. */
  private cached: TaskRecord | null | undefined;
  /** The body in storage as this part last read or wrote it. */
  private stored: string | null = null;

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly schema: TaskSchema,
    private readonly db: D1Database,
    private readonly clock: Clock,
    private readonly config: GatewayConfig,
    private readonly hooks: LifecycleHooks,
  ) {}

  /**
   * The record, read from storage on first use only. The object is the only writer of its
   * storage and memory follows every write (save), so later entry points reuse it: a query or
   * an alarm neither reads nor parses the record again. Whatever else changes the storage says
   * so: retention's wipe (forget) and tests that stage a state (reload).
   */
  record(): TaskRecord | null {
    if (this.cached === undefined) {
      const row = this.schema.exists
        ? this.storage.sql.exec<{ body: string }>("SELECT body FROM record WHERE id = 1").toArray()[0]
        : undefined;
      this.cached = row ? (JSON.parse(row.body) as TaskRecord) : null;
      this.stored = row?.body ?? null;
    }
    return this.cached;
  }

  /** The storage was written other than through this part: the next use reads it again. */
  reload(): void {
    this.cached = undefined;
  }

  /** The record as this tenant may see it (another tenant's task does not exist for it). */
  recordOf(tenantId: string): TaskRecord | null {
    const record = this.record();
    return record && record.meta.tenantId === tenantId ? record : null;
  }

  /** Records a new task whose first poll (a watchdog) is due at `firstWakeAt`. */
  create(record: Omit<TaskRecord, "state">, firstWakeAt: number, now: number): void {
    const state = initialState(now, this.machineConfig(record.meta.action));
    state.timers.pollAt = firstWakeAt;
    this.schema.ensure();
    this.save({ ...record, state });
    this.hooks.changed(now);
    this.hooks.arm();
  }

  update(change: (record: TaskRecord) => TaskRecord): void {
    const record = this.record();
    if (record) this.save(change(record));
  }

  /** The view changed outside the machine (a place in the queue): publish it. */
  announce(at: number): void {
    this.hooks.changed(at);
  }

  /** Timers moved outside the machine: re-arm the alarm. */
  arm(): void {
    this.hooks.arm();
  }

  /** Retention wiped the storage: there is no task here any more. */
  forget(): void {
    this.cached = null;
    this.stored = null;
  }

  tombstoned(): boolean {
    return this.storage.kv.get(TOMBSTONE_KEY) !== undefined;
  }

  /** The orphan sweep refunded this task's charge: a start arriving later must not forward. */
  tombstone(): void {
    if (!this.tombstoned()) this.storage.kv.put(TOMBSTONE_KEY, this.clock.now());
  }

  /**
   * Synchronous read → transition → save, so no await can interleave with it. `alongside`:
   * a change of the record's other fields made with the transition, in the same write.
   */
  apply(observation: Observation, requestId?: string, alongside?: (record: TaskRecord) => TaskRecord) {
    const current = this.record();
    if (!current) throw new Error("task record missing");
    const record = alongside ? alongside(current) : current;
    const result = transition(record.state, observation, this.machineConfig(record.meta.action));
    const next: TaskRecord = { ...record, state: result.state };
    this.save(next);
    for (const change of result.changes) {
      this.hooks.changed(observation.at);
      this.log("task_transition", requestId, { status: change.status, progress: change.progress });
    }
    if (isTerminal(next.state.status) && result.changes.length) this.hooks.ended();
    if (result.changes.length || observation.type !== "timer") this.hooks.arm();
    return result;
  }

  /** Feeds one observation through the machine and carries out what it asks for. */
  async observe(
    observation: Observation,
    requestId?: string,
    alongside?: (record: TaskRecord) => TaskRecord,
  ): Promise<void> {
    await this.hostResultsBeforeSuccess(observation);
    const { effects } = this.apply(observation, requestId, alongside);
    for (const effect of effects) await this.perform(effect);
  }

  /** Hosted results: a SUCCESS is published once its files are in place (or the copy gave up). */
  private async hostResultsBeforeSuccess(observation: Observation): Promise<void> {
    const record = this.record();
    if (observation.type !== "upstream" || observation.status !== "SUCCESS") return;
    if (!record || isTerminal(record.state.status) || record.assets) return;
    await this.hooks.beforeSuccess?.(record, observation.result);
  }

  /** Carries out effects at once; if D1 fails, the unrecorded settlement is retried by the alarm. */
  async settleNow(effects: Effect[]): Promise<void> {
    try {
      for (const effect of effects) await this.perform(effect);
    } catch (error) {
      logEvent("task_settle_deferred", { task_id: this.record()?.meta.taskId, error: String(error) });
    }
  }

  async perform(effect: Effect): Promise<void> {
    const record = this.record();
    if (!record) return;
    const taskId = record.meta.taskId;
    switch (effect.type) {
      case "poll":
        return this.hooks.poll(record);
      case "refund_step": {
        const { step, reason } = effect;
        const refunded = await refundStep(this.db, { taskId, step, reason, at: this.clock.now() });
        logEvent("task_step_refunded", { task_id: taskId, step, reason, first_time: refunded });
        this.apply({ type: "step_refund_recorded", at: this.clock.now(), step });
        return;
      }
      case "settle": {
        const { settled, webhooks } = await settleAskingWebhooks(this.db, record.meta, {
          taskId,
          status: effect.status,
          refund: effect.outcome === "refund",
          refundSteps: effect.refundSteps,
          upstreamCostMicros: record.state.upstreamCostMicros,
          unpricedUpstreamJobs: record.unpricedUpstreamJobs ?? 0,
          // The ledger says why: the upstream's own fail_reason when it failed the task.
          reason:
            effect.reason === "upstream_failure" ? (record.state.failReason ?? effect.reason) : effect.reason,
          failReason: record.state.failReason,
          upstreamTaskId: record.meta.upstreamTaskId,
          upstreamId: record.upstreamId ?? null,
          at: this.clock.now(),
        });
        if (webhooks) this.hooks.webhooksFound?.();
        logEvent("task_settled", {
          task_id: taskId,
          status: effect.status,
          outcome: effect.outcome,
          reason: effect.reason,
          first_time: settled,
        });
        this.apply({ type: "settlement_recorded", at: this.clock.now() });
        return;
      }
      case "late_upstream_report":
        await recordLateUpstreamStatus(this.db, taskId, effect.status);
        logEvent("task_late_upstream_report", { task_id: taskId, upstream_status: effect.status });
        return;
    }
  }

  /** Settled, nothing left to poll or deliver, and the retention period is over. */
  retentionDue(now: number, outboxEmpty: boolean): boolean {
    const state = this.record()?.state;
    return (
      state !== undefined &&
      isTerminal(state.status) &&
      state.settlement?.recorded === true &&
      state.timers.pollAt === null &&
      outboxEmpty &&
      state.finishedAt !== null &&
      now >= state.finishedAt + this.config.retentionMs
    );
  }

  /** When retention is due once nothing else is (null while the task runs). */
  retentionAt(): number | null {
    const finishedAt = this.record()?.state.finishedAt ?? null;
    return finishedAt === null ? null : finishedAt + this.config.retentionMs;
  }

  log(event: string, requestId: string | undefined, fields: Record<string, unknown>): void {
    const record = this.record();
    logEvent(event, {
      task_id: record?.meta.taskId,
      request_id: requestId,
      action: record?.meta.action,
      ...fields,
    });
  }

  private machineConfig(action: string): MachineConfig {
    return {
      quick: QUICK_ACTIONS.has(action as Action),
      modalTimeoutMs: this.config.modalTimeoutMs,
      maxLifetimeMs: this.config.maxLifetimeMs,
      lateWatchMs: 24 * 3_600_000,
      random: Math.random,
    };
  }

  /** Writes the record, unless it is the one already stored (a timer that changed nothing). */
  private save(record: TaskRecord): void {
    const body = JSON.stringify(record);
    if (body !== this.stored) {
      // Memory follows storage only once the write succeeded (a record too large fails here).
      this.storage.sql.exec(
        "INSERT INTO record (id, body) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
        body,
      );
      this.stored = body;
    }
    this.cached = record;
  }
}
