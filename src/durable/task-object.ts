import { DurableObject } from "cloudflare:workers";
import { type Action, QUICK_ACTIONS } from "../domain/actions";
import { ApiError } from "../domain/errors";
import {
  type Effect,
  initialState,
  isTerminal,
  type MachineConfig,
  nextWakeAt,
  type Observation,
  pendingModalStep,
  type TaskState,
  transition,
} from "../domain/task-machine";
import {
  compactUpstreamResult,
  type TaskMeta,
  taskView,
  translateIds,
  unifiedTaskView,
} from "../domain/task-view";
import { configFrom, type Env, type GatewayConfig } from "../env";
import { logEvent } from "../log";
import { admitModalStep, recordLateUpstreamStatus, refundStep, settle } from "../services/billing";
import { apiErrorForUpstream, isAmbiguous, type RequestBody, UpstreamClient } from "../upstream/client";
import { SseBroadcaster } from "./sse-broadcaster";
import { TaskClock } from "./task/clock";
import {
  type ModalInput,
  type ParentInfo,
  type SiblingAttachment,
  type StartInput,
  type StoredEvent,
  type SubmitOutcome,
  serializeError,
} from "./task/contract";
import { EventLog } from "./task/event-log";
import { Scheduler } from "./task/scheduler";
import { migrate } from "./task/storage-schema";
import { WebhookOutbox } from "./task/webhook-outbox";

interface TaskRecord {
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
}

/** A sibling waits this long past the upstream timeout for its lead before asking it, then refunds. */
const SIBLING_GRACE_MS = 30_000;

/**
 * One Durable Object per task: the single owner of the task's state. A thin shell over
 * the pure state machine: it feeds observations in, persists what comes out, publishes
 * changes and carries out the money effects through D1.
 */
export class TaskObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly config: GatewayConfig;
  private forwarding: Promise<SubmitOutcome> | null = null;
  /** The task's time: every timestamp below comes from it (tests move it with runInDurableObject). */
  readonly clock = new TaskClock();
  private readonly scheduler: Scheduler;
  private readonly subscribers = new SseBroadcaster();
  private readonly events: EventLog;
  private readonly outbox: WebhookOutbox;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.config = configFrom(env);
    this.scheduler = new Scheduler(ctx.storage, this.clock);
    this.events = new EventLog(this.sql, this.subscribers);
    this.outbox = new WebhookOutbox(ctx.storage, env.DB, this.clock, {
      backOff: () => this.scheduler.backOff(),
      rearm: () => this.arm(),
    });
    migrate(ctx.storage);
  }

  private tombstoned(): boolean {
    return this.sql.exec("SELECT 1 FROM tombstone").toArray().length > 0;
  }

  /**
   * The orphan sweep's question: does this object hold the task D1 charged for? If it never
   * recorded it, a tombstone is written in the same synchronous step, so a late `start` can
   * no longer forward, and the sweep may refund. Returns what it found.
   */
  async claimIfOrphan(): Promise<"recorded" | "orphan"> {
    if (this.load()) return "recorded";
    if (!this.tombstoned()) this.sql.exec("INSERT INTO tombstone (id, at) VALUES (1, ?1)", this.clock.now());
    return "orphan";
  }

  /** For reconciliation: whether the task is recorded here and has a confirmed upstream id. */
  async custody(): Promise<{ recorded: boolean; upstreamConfirmed: boolean; status: string | null }> {
    const record = this.load();
    return {
      recorded: record !== null,
      upstreamConfirmed: Boolean(record?.meta.upstreamTaskId),
      status: record?.state.status ?? null,
    };
  }

  /**
   * Creates the task and forwards it upstream. The body arrives as a stream (or a string),
   * never inside the RPC argument, so requests at the upstream's own size limits pass.
   * Safe to call again: the first outcome stands.
   */
  async start(input: StartInput, body: RequestBody): Promise<SubmitOutcome> {
    const existing = this.load();
    if (existing || this.tombstoned()) {
      if (typeof body !== "string") void body.cancel().catch(() => {});
      if (!existing) return this.orphanedOutcome();
      return existing.submitOutcome ?? (await this.forwarding) ?? this.unknownOutcome();
    }
    const now = this.clock.now();
    const state = initialState(now, this.machineConfig(input.meta.action));
    // A watchdog: if this object is evicted mid-forward, the alarm finds no upstream id and refunds.
    state.timers.pollAt = now + this.config.upstreamTimeoutMs + 5_000;
    this.save({ meta: input.meta, state, submitOutcome: null, siblings: input.siblings ?? [] });
    this.publish(now);
    this.arm();
    this.forwarding = this.forward(input, body);
    try {
      return await this.forwarding;
    } finally {
      this.forwarding = null;
    }
  }

  /** The outcome of the submit that created this task, for idempotent replays. */
  async submitOutcome(tenantId: string, step: "submit" | "modal" = "submit"): Promise<SubmitOutcome | null> {
    const record = this.load();
    if (!record || record.meta.tenantId !== tenantId) return null;
    if (step === "modal") return record.modalOutcome ?? this.unknownOutcome();
    return record.submitOutcome ?? (await this.forwarding) ?? this.unknownOutcome();
  }

  /**
   * Records a sibling task of a `repeat` request before its lead forwards. Its watchdog asks
   * the lead after the upstream timeout and refunds if the lead cannot say what it got.
   */
  async awaitLead(input: { meta: TaskMeta; leadTaskId: string; requestId: string }): Promise<void> {
    if (this.load() || this.tombstoned()) return;
    const now = this.clock.now();
    const state = initialState(now, this.machineConfig(input.meta.action));
    state.timers.pollAt = now + this.config.upstreamTimeoutMs + SIBLING_GRACE_MS;
    this.save({ meta: input.meta, state, submitOutcome: null, leadTaskId: input.leadTaskId });
    this.publish(now);
    this.arm();
  }

  /** The lead hands this sibling its upstream task (or the reason it has none). Idempotent. */
  async attach(attachment: SiblingAttachment): Promise<void> {
    const record = this.load();
    if (!record || record.submitOutcome) return;
    const at = this.clock.now();
    if (!attachment.ok) {
      const outcome: SubmitOutcome = { ok: false, error: attachment.error };
      this.updateRecord((r) => ({ ...r, submitOutcome: outcome }));
      await this.observe({ type: "rejected", at, reason: attachment.reason });
      return;
    }
    this.updateRecord((r) => ({
      ...r,
      meta: { ...r.meta, upstreamTaskId: attachment.upstreamTaskId },
      submitOutcome: { ok: true, status: attachment.status },
    }));
    await this.observe({ type: "accepted", at, upstreamStatus: attachment.status });
  }

  /** A sibling's question to its lead: what did the upstream give me? null while still forwarding. */
  async attachmentFor(siblingId: string): Promise<SiblingAttachment | null> {
    const record = this.load();
    if (!record) return null;
    const found = record.attachments?.find((a) => a.taskId === siblingId);
    if (found) return found.attachment;
    if (this.forwarding || !record.submitOutcome) return null;
    return {
      ok: false,
      error: serializeError(new ApiError(504, "upstream_timeout", "the upstream did not confirm the task")),
      reason: "upstream did not confirm the task",
    };
  }

  async view(tenantId: string, shape: "task" | "unified" = "task"): Promise<Record<string, unknown> | null> {
    const record = this.load();
    if (!record || record.meta.tenantId !== tenantId) return null;
    return shape === "task"
      ? taskView(record.meta, record.state)
      : unifiedTaskView(record.meta, record.state);
  }

  async parentInfo(tenantId: string): Promise<ParentInfo | null> {
    const record = this.load();
    if (!record || record.meta.tenantId !== tenantId) return null;
    const buttons = taskView(record.meta, record.state).buttons;
    return {
      status: record.state.status,
      action: record.meta.action,
      upstreamTaskId: record.meta.upstreamTaskId,
      customIds: Array.isArray(buttons) ? buttons.map((b: { customId?: unknown }) => String(b.customId)) : [],
    };
  }

  async eventsAfter(tenantId: string, afterSeq: number): Promise<StoredEvent[] | null> {
    const record = this.load();
    if (!record || record.meta.tenantId !== tenantId) return null;
    return this.events.after(afterSeq);
  }

  /** POST /generations/modal on this (inpaint) task: charge the modal price, forward, go on to SUBMITTED. */
  async modal(input: ModalInput): Promise<SubmitOutcome> {
    const record = this.load();
    if (!record || record.meta.tenantId !== input.tenantId) {
      return {
        ok: false,
        error: serializeError(new ApiError(404, "task_not_found", "task not found", { field: "task_id" })),
      };
    }
    const requested = this.apply({ type: "modal_requested", at: this.clock.now() });
    if (requested.modalRefusal) {
      await this.settleNow(requested.effects); // a MODAL that just expired is cancelled here
      return { ok: false, error: serializeError(modalRefusalError(requested.modalRefusal)) };
    }
    // Each /modal is its own charged step, so a refused one can be refunded alone and retried.
    const step = pendingModalStep(requested.state)!;
    const refusal = await admitModalStep(this.env.DB, {
      ...input.admission,
      taskId: record.meta.taskId,
      parentTaskId: record.meta.parentTaskId,
      step,
    });
    if (refusal) {
      this.apply({ type: "modal_released", at: this.clock.now() });
      return { ok: false, error: serializeError(refusal) };
    }
    this.updateMeta((meta) => ({
      ...meta,
      stepCosts: { ...meta.stepCosts, [step]: input.admission.costMicros },
    }));
    const upstream = this.upstream();
    const body = { ...input.body, task_id: record.meta.upstreamTaskId };
    const result = await upstream.submit("modal", body);
    if (!result.ok) {
      const error = apiErrorForUpstream(result.failure);
      const ambiguous = isAmbiguous(result.failure);
      const failed = this.apply({
        type: "modal_failed",
        at: this.clock.now(),
        step,
        ambiguous,
        reason: `modal refused upstream: ${error.message}`,
      });
      await this.settleNow(failed.effects); // refund before answering, not at the next alarm
      this.logTransition("modal_failed", input.requestId, { failure: result.failure.kind, ambiguous });
      // An ambiguous failure keeps its charge until polling tells whether the upstream ran it.
      const told = ambiguous
        ? new ApiError(
            error.status,
            error.code,
            `${error.message}; the upstream may still run this /modal: the task's status will show it, and its charge is refunded if it did not run`,
            error.options,
          )
        : error;
      const outcome: SubmitOutcome = { ok: false, error: serializeError(this.translated(told)) };
      this.updateRecord((r) => ({ ...r, modalOutcome: outcome }));
      return outcome;
    }
    this.apply({ type: "modal_accepted", at: this.clock.now(), step });
    const outcome: SubmitOutcome = { ok: true, status: "submitted" };
    this.updateRecord((r) => ({ ...r, modalOutcome: outcome }));
    return outcome;
  }

  /** Carries out effects at once; if D1 fails, the unrecorded settlement is retried by the alarm. */
  private async settleNow(effects: Effect[]): Promise<void> {
    try {
      for (const effect of effects) await this.perform(effect);
    } catch (error) {
      logEvent("task_settle_deferred", { task_id: this.load()?.meta.taskId, error: String(error) });
    }
  }

  override async alarm(alarmInfo?: AlarmInvocationInfo): Promise<void> {
    await this.scheduler.run(
      alarmInfo,
      (now) => this.runDueWork(now),
      () => this.arm(),
      { task_id: this.load()?.meta.taskId },
    );
  }

  private async runDueWork(now: number): Promise<void> {
    const record = this.load();
    if (!record) return;
    if (this.retentionDue(record, now)) {
      logEvent("task_expired", { task_id: record.meta.taskId });
      await this.scheduler.cancel();
      await this.ctx.storage.deleteAll();
      migrate(this.ctx.storage);
      return;
    }
    if (record.leadTaskId && !record.meta.upstreamTaskId && !record.submitOutcome) {
      // A sibling whose lead never handed it an upstream task: ask the lead, else refund.
      const lead = this.env.TASKS.get(this.env.TASKS.idFromName(record.leadTaskId));
      const attachment = await lead.attachmentFor(record.meta.taskId).catch(() => null);
      if (attachment) return this.attach(attachment);
      // The lead is still forwarding (or unreachable): wait a while longer, then give up.
      const giveUpAt = record.state.createdAt + 2 * (this.config.upstreamTimeoutMs + SIBLING_GRACE_MS);
      if (now < giveUpAt) {
        this.updateRecord((r) => ({
          ...r,
          state: {
            ...r.state,
            timers: { ...r.state.timers, pollAt: Math.min(giveUpAt, now + SIBLING_GRACE_MS) },
          },
        }));
        return;
      }
    }
    if (record.attachments?.some((a) => !a.delivered)) await this.deliverAttachments();
    if (!record.meta.upstreamTaskId && !record.submitOutcome && !this.forwarding) {
      // The forward never reported back (the object was evicted mid-call): we cannot know
      // whether the upstream took it, so the tenant gets its money back.
      const outcome: SubmitOutcome = {
        ok: false,
        error: serializeError(new ApiError(504, "upstream_timeout", "the upstream did not confirm the task")),
      };
      this.updateRecord((r) => ({ ...r, submitOutcome: outcome }));
      await this.observe({ type: "rejected", at: now, reason: "upstream did not confirm the task" });
      return;
    }
    await this.observe({ type: "timer", at: now });
    await this.pumpWebhooks(now);
  }

  /** Fans new webhook messages out and attempts due deliveries (one pump at a time). */
  private pumpWebhooks(now?: number): Promise<void> {
    return this.outbox.pump(() => this.load()?.meta ?? null, now);
  }

  private retentionDue(record: TaskRecord, now: number): boolean {
    const { state } = record;
    return (
      isTerminal(state.status) &&
      state.settlement?.recorded === true &&
      state.timers.pollAt === null &&
      this.outbox.isEmpty() &&
      state.finishedAt !== null &&
      now >= state.finishedAt + this.config.retentionMs
    );
  }

  private async forward(input: StartInput, body: RequestBody): Promise<SubmitOutcome> {
    const result = await this.upstream().submit(input.meta.action, body);
    const at = this.clock.now();
    const siblings = input.siblings ?? [];
    if (!result.ok) {
      const error = this.translated(apiErrorForUpstream(result.failure));
      const outcome: SubmitOutcome = { ok: false, error: serializeError(error) };
      const reason = `upstream refused the submit: ${error.message}`;
      this.updateRecord((r) => ({
        ...r,
        submitOutcome: outcome,
        attachments: siblings.map((taskId) => ({
          taskId,
          attachment: { ok: false, error: outcome.error, reason },
          delivered: false,
        })),
      }));
      this.logTransition("submit_failed", input.requestId, {
        failure: result.failure.kind,
        status: error.status,
      });
      await this.observe({ type: "rejected", at, reason });
      await this.deliverAttachments();
      return outcome;
    }
    // The upstream's answer lists one task per job, in its order: the first is ours, the
    // others go to the siblings in turn. Fewer jobs than charged: the rest are refunded;
    // more: unpaid upstream work, recorded for reconciliation.
    const [mine, ...others] = result.value.tasks;
    const attachments = siblings.map((taskId, i) => {
      const upstream = others[i];
      const attachment: SiblingAttachment = upstream
        ? { ok: true, upstreamTaskId: upstream.taskId, status: upstream.status }
        : {
            ok: false,
            error: serializeError(
              new ApiError(502, "upstream_bad_response", "the upstream made fewer jobs than requested"),
            ),
            reason: "the upstream made fewer jobs than requested",
          };
      return { taskId, attachment, delivered: false };
    });
    const unpricedUpstreamJobs = Math.max(0, others.length - siblings.length);
    if (unpricedUpstreamJobs) {
      logEvent("upstream_unpriced_jobs", { task_id: input.meta.taskId, jobs: unpricedUpstreamJobs });
    }
    const outcome: SubmitOutcome = {
      ok: true,
      status: mine!.status,
      taskIds: [input.meta.taskId, ...attachments.filter((a) => a.attachment.ok).map((a) => a.taskId)],
    };
    this.updateRecord((r) => ({
      ...r,
      meta: { ...r.meta, upstreamTaskId: mine!.taskId },
      submitOutcome: outcome,
      attachments,
      unpricedUpstreamJobs,
    }));
    await this.observe({ type: "accepted", at, upstreamStatus: mine!.status }, input.requestId);
    await this.deliverAttachments();
    return outcome;
  }

  /** Hands each sibling what the upstream gave it; what fails is retried by the alarm. */
  private async deliverAttachments(): Promise<void> {
    const record = this.load();
    const pending = record?.attachments?.filter((a) => !a.delivered) ?? [];
    const delivered = await Promise.all(
      pending.map((a) =>
        this.env.TASKS.get(this.env.TASKS.idFromName(a.taskId))
          .attach(a.attachment)
          .then(
            () => a.taskId,
            (error) => {
              logEvent("sibling_attach_failed", { task_id: a.taskId, error: String(error) });
              return null;
            },
          ),
      ),
    );
    const done = new Set(delivered.filter((id): id is string => id !== null));
    if (!done.size) return;
    this.updateRecord((r) => ({
      ...r,
      attachments: r.attachments?.map((a) => (done.has(a.taskId) ? { ...a, delivered: true } : a)),
    }));
  }

  /** Feeds one observation through the machine and carries out what it asks for. */
  private async observe(observation: Observation, requestId?: string): Promise<void> {
    const { effects } = this.apply(observation, requestId);
    for (const effect of effects) await this.perform(effect);
  }

  private async perform(effect: Effect): Promise<void> {
    const record = this.load();
    if (!record) return;
    switch (effect.type) {
      case "poll":
        return this.poll(record);
      case "refund_step": {
        const refunded = await refundStep(this.env.DB, {
          taskId: record.meta.taskId,
          step: effect.step,
          reason: effect.reason,
          at: this.clock.now(),
        });
        logEvent("task_step_refunded", {
          task_id: record.meta.taskId,
          step: effect.step,
          reason: effect.reason,
          first_time: refunded,
        });
        this.apply({ type: "step_refund_recorded", at: this.clock.now(), step: effect.step });
        return;
      }
      case "settle": {
        const settled = await settle(this.env.DB, {
          taskId: record.meta.taskId,
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
          at: this.clock.now(),
        });
        logEvent("task_settled", {
          task_id: record.meta.taskId,
          status: effect.status,
          outcome: effect.outcome,
          reason: effect.reason,
          first_time: settled,
        });
        this.apply({ type: "settlement_recorded", at: this.clock.now() });
        return;
      }
      case "late_upstream_report":
        await recordLateUpstreamStatus(this.env.DB, record.meta.taskId, effect.status);
        logEvent("task_late_upstream_report", {
          task_id: record.meta.taskId,
          upstream_status: effect.status,
        });
        return;
    }
  }

  private async poll(record: TaskRecord): Promise<void> {
    const upstreamId = record.meta.upstreamTaskId;
    if (!upstreamId) return;
    const result = await this.upstream().query(upstreamId);
    const at = this.clock.now();
    if (!result.ok) {
      logEvent("task_poll_error", { task_id: record.meta.taskId, failure: result.failure.kind });
      await this.observe({ type: "upstream_error", at, error: result.failure.kind });
      return;
    }
    const task = result.value;
    await this.observe({
      type: "upstream",
      at,
      status: task.status,
      progress: task.progress,
      failReason: task.failReason,
      result: compactUpstreamResult(task.raw),
      upstreamCostMicros: task.costMicros,
    });
  }

  /** Appends the current view to the event log (SSE, tenant hub) and the webhook outbox. */
  private publish(at: number): void {
    const record = this.load();
    if (!record) return;
    const data = taskView(record.meta, record.state);
    const hub = this.env.TENANT_HUB.get(this.env.TENANT_HUB.idFromName(record.meta.tenantId));
    const seq = this.events.append(at, data, record.meta.taskId, hub);
    this.outbox.enqueue(seq, record.state.status, at, data);
    this.pumpWebhooks();
  }

  /**
   * GET …/events: the task's SSE stream. The Worker has authenticated the caller and
   * passes the tenant in a header only it can set (this object is not reachable otherwise).
   */
  override async fetch(request: Request): Promise<Response> {
    const record = this.load();
    if (!record || record.meta.tenantId !== request.headers.get("x-gateway-tenant")) {
      return new Response(null, { status: 404 });
    }
    return this.events.subscribe(
      request,
      taskView(record.meta, record.state),
      isTerminal(record.state.status),
    );
  }

  async subscriberCount(): Promise<number> {
    return this.events.subscriberCount;
  }

  /** Synchronous load → transition → save, so no await can interleave with it. */
  private apply(observation: Observation, requestId?: string) {
    const record = this.load();
    if (!record) throw new Error("task record missing");
    const result = transition(record.state, observation, this.machineConfig(record.meta.action));
    const next: TaskRecord = { ...record, state: result.state };
    this.save(next);
    for (const change of result.changes) {
      this.publish(observation.at);
      this.logTransition("task_transition", requestId, { status: change.status, progress: change.progress });
    }
    if (isTerminal(next.state.status) && result.changes.length) this.events.closeSubscribers();
    if (result.changes.length || observation.type !== "timer") this.arm();
    return result;
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

  /** Arms the single alarm for the earliest due timer: the machine's, a webhook retry, or retention. */
  private arm(): void {
    const record = this.load();
    if (!record) return;
    const nextDelivery = this.outbox.nextAttemptAt();
    const machineWake = nextWakeAt(record.state);
    const retention =
      machineWake === null && nextDelivery === null && record.state.finishedAt !== null
        ? record.state.finishedAt + this.config.retentionMs
        : null;
    this.scheduler.armAtEarliest([machineWake, nextDelivery, retention]);
  }

  private upstream(): UpstreamClient {
    return new UpstreamClient({
      baseUrl: this.config.upstreamBaseUrl,
      apiKey: this.config.upstreamApiKey,
      timeoutMs: this.config.upstreamTimeoutMs,
    });
  }

  private translated(error: ApiError): ApiError {
    const record = this.load();
    if (!record) return error;
    const message = translateIds(error.message, record.meta);
    return new ApiError(error.status, error.code, message, error.options);
  }

  private orphanedOutcome(): SubmitOutcome {
    return {
      ok: false,
      error: serializeError(
        new ApiError(504, "upstream_timeout", "the task was not started in time; its charge was refunded"),
      ),
    };
  }

  private unknownOutcome(): SubmitOutcome {
    return {
      ok: false,
      error: serializeError(
        new ApiError(409, "idempotency_in_progress", "the original request is still running"),
      ),
    };
  }

  private logTransition(event: string, requestId: string | undefined, fields: Record<string, unknown>) {
    const record = this.load();
    logEvent(event, {
      task_id: record?.meta.taskId,
      request_id: requestId,
      action: record?.meta.action,
      ...fields,
    });
  }

  private load(): TaskRecord | null {
    const row = this.sql.exec<{ body: string }>("SELECT body FROM record WHERE id = 1").toArray()[0];
    return row ? (JSON.parse(row.body) as TaskRecord) : null;
  }

  private save(record: TaskRecord): void {
    this.sql.exec(
      "INSERT INTO record (id, body) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
      JSON.stringify(record),
    );
  }

  private updateRecord(update: (record: TaskRecord) => TaskRecord): void {
    const record = this.load();
    if (record) this.save(update(record));
  }

  private updateMeta(update: (meta: TaskMeta) => TaskMeta): void {
    this.updateRecord((r) => ({ ...r, meta: update(r.meta) }));
  }
}

function modalRefusalError(refusal: "modal_not_available" | "modal_expired" | "modal_in_progress"): ApiError {
  switch (refusal) {
    case "modal_expired":
      return new ApiError(
        409,
        "modal_expired",
        "the task waited in MODAL too long and was cancelled; start a new inpaint",
        {
          field: "task_id",
        },
      );
    case "modal_in_progress":
      return new ApiError(409, "modal_not_available", "a /modal for this task is already being processed", {
        field: "task_id",
      });
    case "modal_not_available":
      return new ApiError(409, "modal_not_available", "the task is not waiting in MODAL", {
        field: "task_id",
      });
  }
}
