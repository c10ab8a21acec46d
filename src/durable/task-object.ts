import { DurableObject } from "cloudflare:workers";
import { DEFAULT_UPSTREAM_ID } from "../db/upstreams";
import { ApiError } from "../domain/errors";
import { isFinal, isTerminal, nextWakeAt } from "../domain/task-machine";
import {
  sendsWebhooks,
  type TaskMeta,
  type TaskViewShape,
  taskView,
  unifiedTaskView,
} from "../domain/task-view";
import { configFrom, type Env } from "../env";
import { logEvent } from "../log";
import { span } from "../spans";
import type { RequestBody } from "../upstream/client";
import { SseBroadcaster } from "./sse-broadcaster";
import { AssetHosting, visibleState } from "./task/asset-hosting";
import { TaskClock } from "./task/clock";
import {
  type ModalInput,
  type ParentInfo,
  refusedOutcome,
  type SiblingAttachment,
  type StartInput,
  type StoredEvent,
  type SubmitOutcome,
  type TaskQueryAnswer,
} from "./task/contract";
import { EventLog } from "./task/event-log";
import { Forwarding } from "./task/forwarding";
import { TaskLifecycle, type TaskRecord } from "./task/lifecycle";
import { Scheduler } from "./task/scheduler";
import { TaskSchema } from "./task/storage-schema";
import { WebhookOutbox } from "./task/webhook-outbox";

/**
 * One Durable Object per task: the single owner of the task's state, as a list of parts.
 * Each RPC method takes the record from `lifecycle.record()` (read from storage once per
 * instance: the object is its storage's only writer) and hands the work to:
 * - `lifecycle`: the record and the pure state machine, money effects via the billing service;
 * - `forwarding`: the submit, a /modal and polls to the upstream, and the hand-over watchdogs;
 * - `events`: the durable event log, SSE subscribers and the tenant hub;
 * - `outbox`: webhook messages and deliveries;
 * - `assets`: hosted results, copied before a SUCCESS is published (views show their links);
 * - `scheduler`: the single alarm over every stored timer, on `clock`.
 */
export class TaskObject extends DurableObject<Env> {
  /** The task's time: every timestamp comes from it (tests move it with runInDurableObject). */
  readonly clock = new TaskClock();
  private readonly subscribers = new SseBroadcaster();
  private readonly schema: TaskSchema;
  private readonly scheduler: Scheduler;
  private readonly events: EventLog;
  private readonly outbox: WebhookOutbox;
  /** Public for tests that stage a state in storage behind the object's back (`lifecycle.reload()`). */
  readonly lifecycle: TaskLifecycle;
  private readonly forwarding: Forwarding;
  private readonly assets: AssetHosting;
  private readonly views = new WeakMap<TaskRecord, Partial<Record<TaskViewShape, Record<string, unknown>>>>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.schema = new TaskSchema(ctx.storage);
    const config = configFrom(env);
    this.scheduler = new Scheduler(ctx.storage, this.clock);
    this.events = new EventLog(ctx.storage.sql, this.subscribers);
    this.outbox = new WebhookOutbox(ctx.storage, this.schema, env.DB, this.clock, {
      backOff: () => this.scheduler.backOff(),
      rearm: () => this.arm(),
      inUse: () => {
        const record = this.lifecycle.record();
        return record !== null && sendsWebhooks(record.meta);
      },
    });
    this.assets = new AssetHosting(env, config, this.clock);
    this.lifecycle = new TaskLifecycle(ctx.storage, this.schema, env.DB, this.clock, config, {
      changed: (at) => this.publish(at),
      ended: () => {
        this.events.closeSubscribers();
        void this.forwarding.releaseSlot();
      },
      arm: () => this.arm(),
      poll: (record) => this.forwarding.poll(record),
      webhooksFound: () => this.sendWebhooks(),
      beforeSuccess: (record, result) =>
        this.assets.beforeSuccess(record, result, (change) => this.lifecycle.update(change)),
    });
    this.forwarding = new Forwarding(env, config, this.clock, this.lifecycle, ctx.storage);
  }

  /** The orphan sweep's question; an unrecorded task is tombstoned in the same step, so a late start cannot forward. */
  async claimIfOrphan(): Promise<"recorded" | "orphan"> {
    if (this.lifecycle.record()) return "recorded";
    this.lifecycle.tombstone();
    return "orphan";
  }

  /** For reconciliation: whether the task is recorded here and has a confirmed upstream id. */
  async custody(): Promise<{ recorded: boolean; upstreamConfirmed: boolean; status: string | null }> {
    const record = this.lifecycle.record();
    return {
      recorded: record !== null,
      upstreamConfirmed: Boolean(record?.meta.upstreamTaskId),
      status: record?.state.status ?? null,
    };
  }

  /** Creates the task and forwards it; the body is a stream (never inside the RPC argument). Idempotent. */
  async start(input: StartInput, body: RequestBody): Promise<SubmitOutcome> {
    return span("task.start", () => this.forwarding.start(input, body));
  }

  /** The outcome of the submit (or /modal) this task answered, for idempotent replays. */
  async submitOutcome(tenantId: string, step: "submit" | "modal" = "submit"): Promise<SubmitOutcome | null> {
    const record = this.lifecycle.recordOf(tenantId);
    return record ? this.forwarding.outcome(record, step) : null;
  }

  /** The task's upstream gate granted it a slot it waited for (a release woke it). */
  async slotGranted(taskId: string, upstreamId: string): Promise<void> {
    await this.forwarding.slotGranted(taskId, upstreamId);
  }

  async awaitLead(input: { meta: TaskMeta; leadTaskId: string; requestId: string }): Promise<void> {
    this.forwarding.awaitLead(input);
  }

  async attach(attachment: SiblingAttachment): Promise<void> {
    await this.forwarding.attach(attachment);
  }

  async attachmentFor(siblingId: string): Promise<SiblingAttachment | null> {
    return this.forwarding.attachmentFor(siblingId);
  }

  async view(tenantId: string, shape: TaskViewShape = "task"): Promise<Record<string, unknown> | null> {
    return (await this.query(tenantId, shape))?.view ?? null;
  }

  /** A tenant's query: the view, and whether it is final (callers may keep a final one). */
  async query(tenantId: string, shape: TaskViewShape): Promise<TaskQueryAnswer | null> {
    const record = this.lifecycle.recordOf(tenantId);
    if (!record) return null;
    return { view: this.viewOf(record, shape), final: isFinal(record.state) };
  }

  async parentInfo(tenantId: string): Promise<ParentInfo | null> {
    const record = this.lifecycle.recordOf(tenantId);
    if (!record) return null;
    const buttons = taskView(record.meta, record.state).buttons;
    return {
      status: record.state.status,
      action: record.meta.action,
      upstreamTaskId: record.meta.upstreamTaskId,
      upstreamId: record.upstreamId ?? DEFAULT_UPSTREAM_ID,
      customIds: Array.isArray(buttons) ? buttons.map((b: { customId?: unknown }) => String(b.customId)) : [],
    };
  }

  async eventsAfter(tenantId: string, afterSeq: number): Promise<StoredEvent[] | null> {
    return this.lifecycle.recordOf(tenantId) ? this.events.after(afterSeq) : null;
  }

  /** POST /generations/modal on this (inpaint) task. */
  async modal(input: ModalInput): Promise<SubmitOutcome> {
    const record = this.lifecycle.recordOf(input.tenantId);
    if (!record)
      return refusedOutcome(new ApiError("task_not_found", "task not found", { field: "task_id" }));
    return this.forwarding.modal(record, input);
  }

  /** GET …/events: the Worker authenticated the caller and names the tenant in a header only it can set. */
  override async fetch(request: Request): Promise<Response> {
    const record = this.lifecycle.record();
    if (!record || record.meta.tenantId !== request.headers.get("x-gateway-tenant")) {
      return new Response(null, { status: 404 });
    }
    return this.events.subscribe(request, this.viewOf(record, "task"), isTerminal(record.state.status));
  }

  async subscriberCount(): Promise<number> {
    return this.events.subscriberCount;
  }

  /** The tenant registered a webhook endpoint (its hub tells each open task): publish to webhooks from now on. */
  async webhooksChanged(): Promise<void> {
    this.sendWebhooks();
  }

  override async alarm(alarmInfo?: AlarmInvocationInfo): Promise<void> {
    const taskId = this.lifecycle.record()?.meta.taskId;
    await this.scheduler.run(
      alarmInfo,
      (now) => this.runDueWork(now),
      () => this.arm(),
      { task_id: taskId },
    );
  }

  /** One alarm's work, judged against `now`: retention, the hand-over watchdogs, the machine's timers, webhooks. */
  private async runDueWork(now: number): Promise<void> {
    const record = this.lifecycle.record();
    if (!record) return;
    if (this.lifecycle.retentionDue(now, this.outbox.isEmpty())) {
      logEvent("task_expired", { task_id: record.meta.taskId });
      await this.scheduler.cancel();
      await this.ctx.storage.deleteAll();
      this.schema.wiped();
      this.lifecycle.forget();
      return;
    }
    if (await this.forwarding.watch(record, now)) return;
    await this.lifecycle.observe({ type: "timer", at: now });
    await this.pumpWebhooks(now);
  }

  /**
   * The record's view as tenants see it, built once per record and shape: a record is replaced
   * on every change, never edited, so the view published for a change also answers the queries
   * until the next one. Views are only serialized (storage, RPC, SSE), never changed.
   */
  private viewOf(record: TaskRecord, shape: TaskViewShape): Record<string, unknown> {
    const built = this.views.get(record) ?? {};
    const kept = built[shape];
    if (kept) return kept;
    const view = (shape === "task" ? taskView : unifiedTaskView)(record.meta, visibleState(record));
    this.views.set(record, { ...built, [shape]: view });
    return view;
  }

  /** Appends the current view to the event log (SSE, tenant hub) and the webhook outbox. */
  private publish(at: number): void {
    const record = this.lifecycle.record();
    if (!record) return;
    const data = this.viewOf(record, "task");
    const hub = this.env.TENANT_HUB.get(this.env.TENANT_HUB.idFromName(record.meta.tenantId));
    const seq = this.events.append(at, data, record.meta.taskId, hub);
    // A tenant without endpoints (as admission found it) costs the task no webhook work.
    if (!sendsWebhooks(record.meta)) return;
    this.outbox.enqueue(seq, record.state.status, at, data);
    void this.pumpWebhooks();
  }

  /**
   * The task learned that its tenant has endpoints: later changes go out as webhooks, and a
   * task already finished sends its terminal event now (it was published before anybody knew).
   */
  private sendWebhooks(): void {
    const record = this.lifecycle.record();
    if (!record || sendsWebhooks(record.meta)) return;
    this.lifecycle.update((r) => ({ ...r, meta: { ...r.meta, webhooks: true } }));
    const latest = this.events.latest();
    if (!isTerminal(record.state.status) || !latest) return;
    this.outbox.enqueue(latest.seq, record.state.status, latest.at, latest.data);
    void this.pumpWebhooks();
  }

  private pumpWebhooks(now?: number): Promise<void> {
    return this.outbox.pump(() => this.lifecycle.record()?.meta ?? null, now);
  }

  /** Arms the single alarm for the earliest timer: the machine's, a webhook retry, or else retention. */
  private arm(): void {
    const record = this.lifecycle.record();
    if (!record) return;
    const timers = [nextWakeAt(record.state), this.outbox.nextAttemptAt()];
    const retention = timers.every((at) => at === null) ? this.lifecycle.retentionAt() : null;
    this.scheduler.armAtEarliest([...timers, retention]);
  }
}
