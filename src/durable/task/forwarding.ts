/**
 * Everything the task says to the upstream: the submit (and, for a `repeat` request, handing
 * each sibling task its upstream job), a /modal (charged through the billing service first),
 * and polls. Errors are worded in our ids, never the upstream's.
 */

import { DEFAULT_UPSTREAM_ID } from "../../db/upstreams";
import { ApiError } from "../../domain/errors";
import { isTerminal, pendingModalStep } from "../../domain/task-machine";
import { compactUpstreamResult, type TaskMeta, translateIds } from "../../domain/task-view";
import type { Env, GatewayConfig } from "../../env";
import { logEvent } from "../../log";
import { admitModalStep } from "../../services/billing";
import {
  gateOf,
  memberAvailable,
  memberCap,
  parentUpstreamUnavailable,
  queueBoundsOf,
  type RouteCandidate,
  routeFor,
} from "../../services/upstream-pool";
import { span } from "../../spans";
import { apiErrorForUpstream, isAmbiguous, type RequestBody } from "../../upstream/client";
import type { Clock } from "./clock";
import {
  type ModalInput,
  refusedOutcome,
  type SiblingAttachment,
  type StartInput,
  type SubmitOutcome,
  serializeError,
} from "./contract";
import type { QueuedPlace, TaskLifecycle, TaskRecord } from "./lifecycle";
import { QueuedBody } from "./queued-body";
import { failsOver, type RoutedSubmit, type SubmitHooks, UpstreamRoute } from "./upstream-route";

/** A sibling waits this long past the upstream timeout for its lead before asking it, then refunds. */
const SIBLING_GRACE_MS = 30_000;

/** A waiting task asks its gate again this often, in case its wake-up was lost. */
const QUEUE_RECHECK_MS = 30_000;

const unconfirmed = () => new ApiError("upstream_timeout", "the upstream did not confirm the task");

export class Forwarding {
  /** The submit being forwarded by this instance (null when none is, or it was evicted). */
  private inFlight: Promise<SubmitOutcome> | null = null;
  private readonly upstreams: UpstreamRoute;
  private readonly queuedBody: QueuedBody;

  constructor(
    private readonly env: Env,
    private readonly config: GatewayConfig,
    private readonly clock: Clock,
    private readonly lifecycle: TaskLifecycle,
    storage: DurableObjectStorage,
  ) {
    this.upstreams = new UpstreamRoute(env, config);
    this.queuedBody = new QueuedBody(storage);
  }

  /** Records the task and forwards it; called again, the first outcome stands. */
  async start(input: StartInput, body: RequestBody): Promise<SubmitOutcome> {
    const existing = this.lifecycle.record();
    if (existing || this.lifecycle.tombstoned()) {
      if (typeof body !== "string") void body.cancel().catch(() => {});
      if (!existing)
        return refusedOutcome(
          new ApiError("upstream_timeout", "the task was not started in time; its charge was refunded"),
        );
      return existing.submitOutcome ?? (await this.inFlight) ?? stillRunning();
    }
    const now = this.clock.now();
    // A watchdog: if this object is evicted mid-forward, the alarm finds no upstream id and refunds.
    this.lifecycle.create(
      { meta: input.meta, submitOutcome: null, siblings: input.siblings ?? [] },
      now + this.config.upstreamTimeoutMs + 5_000,
      now,
    );
    this.inFlight = this.forward(input, body);
    try {
      return await this.inFlight;
    } finally {
      this.inFlight = null;
    }
  }

  /** The outcome of the submit (or the /modal) that this task answered, for idempotent replays. */
  async outcome(record: TaskRecord, step: "submit" | "modal"): Promise<SubmitOutcome> {
    if (step === "modal") return record.modalOutcome ?? stillRunning();
    return record.queuedAnswer ?? record.submitOutcome ?? (await this.inFlight) ?? stillRunning();
  }

  /** Records a sibling of a `repeat` request; its watchdog asks the lead after the upstream timeout. */
  awaitLead(input: { meta: TaskMeta; leadTaskId: string }): void {
    if (this.lifecycle.record() || this.lifecycle.tombstoned()) return;
    const now = this.clock.now();
    this.lifecycle.create(
      { meta: input.meta, submitOutcome: null, leadTaskId: input.leadTaskId },
      now + this.config.upstreamTimeoutMs + SIBLING_GRACE_MS,
      now,
    );
  }

  /** The lead hands this sibling its upstream task (or the reason it has none). Idempotent. */
  async attach(attachment: SiblingAttachment): Promise<void> {
    const record = this.lifecycle.record();
    if (!record || record.submitOutcome) return;
    const at = this.clock.now();
    if (!attachment.ok) {
      this.lifecycle.update((r) => ({ ...r, submitOutcome: { ok: false, error: attachment.error } }));
      await this.lifecycle.observe({ type: "rejected", at, reason: attachment.reason });
      return;
    }
    this.lifecycle.update((r) => ({
      ...r,
      meta: { ...r.meta, upstreamTaskId: attachment.upstreamTaskId },
      submitOutcome: { ok: true, status: attachment.status },
      upstreamId: attachment.upstreamId,
    }));
    await this.lifecycle.observe({ type: "accepted", at, upstreamStatus: attachment.status });
  }

  /** A sibling's question to its lead: what did the upstream give me? null while still forwarding. */
  attachmentFor(siblingId: string): SiblingAttachment | null {
    const record = this.lifecycle.record();
    if (!record) return null;
    const found = record.attachments?.find((a) => a.taskId === siblingId);
    if (found) return found.attachment;
    if (this.inFlight || record.queued || !record.submitOutcome) return null;
    return { ok: false, error: serializeError(unconfirmed()), reason: "upstream did not confirm the task" };
  }

  /** POST /generations/modal on this (inpaint) task: charge the step, forward, go on to SUBMITTED. */
  async modal(record: TaskRecord, input: ModalInput): Promise<SubmitOutcome> {
    const requested = this.lifecycle.apply({ type: "modal_requested", at: this.clock.now() });
    if (requested.modalRefusal) {
      await this.lifecycle.settleNow(requested.effects); // a MODAL that just expired is cancelled here
      return refusedOutcome(modalRefusalError(requested.modalRefusal));
    }
    // Sticky: only the member that made the job can continue it; decided before the charge.
    if (!(await memberAvailable(this.env, upstreamOf(record)))) {
      this.lifecycle.apply({ type: "modal_released", at: this.clock.now() });
      return refusedOutcome(parentUpstreamUnavailable());
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
      this.lifecycle.apply({ type: "modal_released", at: this.clock.now() });
      return refusedOutcome(refusal);
    }
    this.lifecycle.update((r) => ({
      ...r,
      meta: { ...r.meta, stepCosts: { ...r.meta.stepCosts, [step]: input.admission.costMicros } },
    }));
    const upstreamId = upstreamOf(record);
    const result = await (await this.upstreams.client(upstreamId)).submit("modal", {
      ...input.body,
      task_id: record.meta.upstreamTaskId,
    });
    await this.upstreams.record(upstreamId, result);
    const outcome: SubmitOutcome = result.ok
      ? { ok: true, status: "submitted" }
      : await this.modalFailed(step, result.failure, input.requestId);
    if (result.ok) this.lifecycle.apply({ type: "modal_accepted", at: this.clock.now(), step });
    this.lifecycle.update((r) => ({ ...r, modalOutcome: outcome }));
    return outcome;
  }

  /** Asks the upstream how the task is doing and feeds the answer to the machine. */
  async poll(record: TaskRecord): Promise<void> {
    const upstreamId = record.meta.upstreamTaskId;
    if (!upstreamId) return;
    const member = upstreamOf(record);
    const result = await (await this.upstreams.client(member)).query(upstreamId);
    await this.upstreams.record(member, result);
    const at = this.clock.now();
    if (!result.ok) {
      logEvent("task_poll_error", { task_id: record.meta.taskId, failure: result.failure.kind });
      await this.lifecycle.observe({ type: "upstream_error", at, error: result.failure.kind });
      return;
    }
    const task = result.value;
    await this.lifecycle.observe({
      type: "upstream",
      at,
      status: task.status,
      progress: task.progress,
      failReason: task.failReason,
      result: compactUpstreamResult(task.raw),
      upstreamCostMicros: task.costMicros,
    });
  }

  /**
   * The alarm's watchdogs over the hand-over to the upstream: a sibling asks its lead (and
   * refunds if the lead never can say), a lead retries handing siblings their jobs, and a
   * forward that never reported back (evicted mid-call) is refunded. True when it handled the run.
   */
  async watch(record: TaskRecord, now: number): Promise<boolean> {
    if (record.holdsSlot && isTerminal(record.state.status)) await this.releaseSlot();
    if (record.queued && !isTerminal(record.state.status)) {
      await this.checkQueue(record.queued, now);
      return true;
    }
    if (record.leadTaskId && !record.meta.upstreamTaskId && !record.submitOutcome) {
      const lead = this.env.TASKS.get(this.env.TASKS.idFromName(record.leadTaskId));
      const attachment = await lead.attachmentFor(record.meta.taskId).catch(() => null);
      if (attachment) {
        await this.attach(attachment);
        return true;
      }
      // The lead is still forwarding, waiting in a queue, or unreachable: wait a while longer, then give up.
      const giveUpAt =
        record.state.createdAt +
        2 * (this.config.upstreamTimeoutMs + SIBLING_GRACE_MS) +
        this.config.upstreamQueueMaxWaitMs;
      if (now < giveUpAt) {
        this.lifecycle.update((r) => ({
          ...r,
          state: {
            ...r.state,
            timers: { ...r.state.timers, pollAt: Math.min(giveUpAt, now + SIBLING_GRACE_MS) },
          },
        }));
        return true;
      }
    }
    if (record.attachments?.some((a) => !a.delivered)) await this.deliverAttachments();
    if (!record.meta.upstreamTaskId && !record.submitOutcome && !this.inFlight) {
      // We cannot know whether the upstream took it, so the tenant gets its money back.
      this.lifecycle.update((r) => ({ ...r, submitOutcome: refusedOutcome(unconfirmed()) }));
      await this.lifecycle.observe({
        type: "rejected",
        at: now,
        reason: "upstream did not confirm the task",
      });
      return true;
    }
    return false;
  }

  /** The task ended: its slot on the member's gate goes back (once: the gate ignores a second release). */
  async releaseSlot(): Promise<void> {
    const record = this.lifecycle.record();
    if (!record?.holdsSlot) return;
    if (await this.upstreams.release(record.meta.taskId, upstreamOf(record))) {
      this.lifecycle.update((r) => ({ ...r, holdsSlot: false }));
    }
  }

  private async forward(input: StartInput, body: RequestBody): Promise<SubmitOutcome> {
    const routed = await this.upstreams.submit(
      input.meta.taskId,
      input.meta.action,
      body,
      input.route,
      this.submitHooks(input.requestId, input.route ?? [], input.meta.tenantId, null),
    );
    if ("queued" in routed) return this.waitInQueue(input, routed.queued.position);
    return this.finish(input.meta.taskId, input.siblings ?? [], input.requestId, routed);
  }

  /**
   * What the task records around each step of a submit over a route. The slot (or the place
   * in a queue, with the body) is on record before the gate can grant it, so a watchdog after
   * an eviction frees it and a wake-up finds the body. `since`: when the task began waiting
   * (a task sent back to the queue keeps its first wait's start, so the bound is on the whole wait).
   */
  private submitHooks(
    requestId: string,
    candidates: readonly RouteCandidate[],
    tenantId: string,
    since: number | null,
  ): SubmitHooks {
    const bounds = queueBoundsOf(this.env);
    return {
      holding: (id) => {
        this.queuedBody.drop();
        this.lifecycle.update((r) => ({ ...r, upstreamId: id, holdsSlot: true, queued: undefined }));
      },
      waiting: (id, payload) => {
        this.queuedBody.keep(payload);
        const place: QueuedPlace = {
          since: since ?? this.clock.now(),
          position: 0,
          requestId,
          ignoreCircuit: candidates.find((c) => c.id === id)?.ignoreCircuit ?? false,
        };
        this.lifecycle.update((r) => ({ ...r, upstreamId: id, holdsSlot: true, queued: place }));
      },
      notWaiting: () => {
        this.queuedBody.drop();
        this.lifecycle.update((r) => ({ ...r, holdsSlot: false, queued: undefined }));
      },
      queue: { tenantId, bound: bounds.max, tenantBound: bounds.perTenant },
    };
  }

  /** Every member was full: the task waits (NOT_START, its place shown), and the client is told it was accepted. */
  private waitInQueue(input: StartInput, position: number): SubmitOutcome {
    const outcome: SubmitOutcome = {
      ok: true,
      status: "submitted",
      taskIds: [input.meta.taskId, ...(input.siblings ?? [])],
    };
    this.lifecycle.update((r) => ({ ...r, queuedAnswer: outcome }));
    this.markQueued(position, input.requestId);
    return outcome;
  }

  /** The task now waits at `position` (its place recorded by the `waiting` hook): show it, check again later. */
  private markQueued(position: number, requestId: string): void {
    const now = this.clock.now();
    this.lifecycle.update((r) => ({
      ...r,
      queued: r.queued ? { ...r.queued, position } : r.queued,
      meta: { ...r.meta, queuePosition: position },
      state: {
        ...r.state,
        timers: { ...r.state.timers, pollAt: this.nextQueueCheck(r.queued?.since ?? now, now) },
      },
    }));
    this.lifecycle.log("task_queued", requestId, {
      upstream_id: this.lifecycle.record()?.upstreamId,
      position,
    });
    this.lifecycle.announce(now);
    this.lifecycle.arm();
  }

  /**
   * The gate granted this task a slot on `upstreamId` (its release woke us). A task that no
   * longer waits there gives the slot straight back, so a slot never sticks to a dead task.
   */
  async slotGranted(taskId: string, upstreamId: string): Promise<void> {
    if (this.inFlight) await this.inFlight.catch(() => null);
    const record = this.lifecycle.record();
    if (record?.queued && record.upstreamId === upstreamId) {
      await this.checkQueue(record.queued, this.clock.now());
      return;
    }
    const holdsThere = record?.holdsSlot && record.upstreamId === upstreamId;
    if (!record || isTerminal(record.state.status) || !holdsThere) {
      logEvent("upstream_slot_returned", { task_id: taskId, upstream_id: upstreamId });
      await this.upstreams.release(taskId, upstreamId);
    }
  }

  /**
   * A waiting task's alarm (or its wake-up): past the wait bound it fails and is refunded;
   * otherwise it asks its gate again (idempotent): a granted slot is used at once, a place
   * still held is shown and checked again later.
   */
  private async checkQueue(place: QueuedPlace, now: number): Promise<void> {
    const taskId = this.lifecycle.record()!.meta.taskId;
    const upstreamId = this.lifecycle.record()!.upstreamId!;
    if (now >= place.since + this.config.upstreamQueueMaxWaitMs) return this.giveUpWaiting(now);
    const bounds = queueBoundsOf(this.env);
    const answer = await gateOf(this.env, upstreamId).acquire(taskId, {
      maxInflight: await memberCap(this.env, upstreamId),
      queueBound: bounds.max,
      ignoreCircuit: place.ignoreCircuit,
    });
    // Another entry point (the alarm, a wake-up) may have moved on while the gate answered.
    const record = this.lifecycle.record();
    if (!record?.queued || isTerminal(record.state.status)) return;
    if ("granted" in answer) {
      this.inFlight = this.sendQueued(record, upstreamId);
      try {
        await this.inFlight;
      } finally {
        this.inFlight = null;
      }
      return;
    }
    if ("refused" in answer)
      return this.giveUpWaiting(now, `the upstream's queue refused it (${answer.refused})`);
    const at = this.clock.now();
    const moved = record.meta.queuePosition !== answer.position;
    this.lifecycle.update((r) => ({
      ...r,
      queued: r.queued ? { ...r.queued, position: answer.position } : r.queued,
      meta: { ...r.meta, queuePosition: answer.position },
      state: { ...r.state, timers: { ...r.state.timers, pollAt: this.nextQueueCheck(place.since, at) } },
    }));
    if (moved) this.lifecycle.announce(at);
    this.lifecycle.arm();
  }

  /** Sends the kept body to the member whose slot the task now holds, then goes on as any submit. */
  private async sendQueued(record: TaskRecord, upstreamId: string): Promise<SubmitOutcome> {
    const place = record.queued!;
    const now = this.clock.now();
    const body = this.queuedBody.read();
    // From here the task holds a slot like any submitted one; the watchdog covers an eviction mid-call.
    this.lifecycle.update((r) => ({
      ...r,
      queued: undefined,
      meta: { ...r.meta, queuePosition: null },
      state: {
        ...r.state,
        timers: { ...r.state.timers, pollAt: now + this.config.upstreamTimeoutMs + 5_000 },
      },
    }));
    this.lifecycle.log("task_dequeued", place.requestId, {
      upstream_id: upstreamId,
      waited_ms: now - place.since,
    });
    let routed: RoutedSubmit;
    if (body === null) {
      routed = { upstreamId: null };
    } else {
      const result = await (await this.upstreams.client(upstreamId)).submit(record.meta.action, body);
      await this.upstreams.record(upstreamId, result);
      routed = { upstreamId, holdsSlot: true, result };
      // A clear refusal after the wait: a new task goes back through routing, without this member.
      if (!result.ok && failsOver(result.failure) && record.meta.parentTaskId === null) {
        await this.upstreams.release(record.meta.taskId, upstreamId);
        routed = { upstreamId, holdsSlot: false, result };
        const route = (
          await routeFor(this.env, record.meta.action, null, { tenantId: record.meta.tenantId }).catch(
            () => [],
          )
        ).filter((c) => c.id !== upstreamId);
        if (route.length) {
          logEvent("upstream_reroute", { task_id: record.meta.taskId, upstream_id: upstreamId });
          const again = await this.upstreams.submit(
            record.meta.taskId,
            record.meta.action,
            body,
            route,
            this.submitHooks(place.requestId, route, record.meta.tenantId, place.since),
          );
          if ("queued" in again) {
            this.markQueued(again.queued.position, place.requestId);
            return record.queuedAnswer ?? { ok: true, status: "submitted" };
          }
          routed = again;
        }
      }
    }
    this.queuedBody.drop();
    return this.finish(record.meta.taskId, record.siblings ?? [], place.requestId, routed);
  }

  /** Waited past the bound (or lost its place): the task fails and its charge is refunded, once. */
  private async giveUpWaiting(at: number, reason = "no upstream slot freed in time"): Promise<void> {
    const record = this.lifecycle.record()!;
    const error = new ApiError(
      "upstream_busy",
      `the task waited for an upstream slot and gave up: ${reason}`,
    );
    this.queuedBody.drop();
    this.lifecycle.update((r) => ({
      ...r,
      queued: undefined,
      meta: { ...r.meta, queuePosition: null },
      submitOutcome: refusedOutcome(error),
      attachments: (r.siblings ?? []).map((taskId) => ({
        taskId,
        attachment: { ok: false, error: serializeError(error), reason },
        delivered: false,
      })),
    }));
    this.lifecycle.log("task_queue_gave_up", record.queued?.requestId, { reason });
    // Terminal: the `ended` hook gives the place in the queue back (retried by the alarm).
    await this.lifecycle.observe({ type: "rejected", at, reason: `upstream_busy: ${reason}` });
    await this.deliverAttachments();
  }

  private nextQueueCheck(since: number, now: number): number {
    return Math.min(since + this.config.upstreamQueueMaxWaitMs, now + QUEUE_RECHECK_MS);
  }

  /** What the upstream answered a submit (or that nobody took it): the task's outcome, siblings told. */
  private async finish(
    taskId: string,
    siblings: readonly string[],
    requestId: string,
    routed: RoutedSubmit,
  ): Promise<SubmitOutcome> {
    const at = this.clock.now();
    if (routed.upstreamId !== null && "holdsSlot" in routed) {
      this.lifecycle.update((r) => ({ ...r, upstreamId: routed.upstreamId, holdsSlot: routed.holdsSlot }));
    }
    const result = routed.upstreamId !== null && "result" in routed ? routed.result : null;
    if (!result?.ok) {
      const error = this.translated(result ? apiErrorForUpstream(result.failure) : everyMemberFull());
      const outcome = refusedOutcome(error);
      const reason = `upstream refused the submit: ${error.message}`;
      this.lifecycle.update((r) => ({
        ...r,
        submitOutcome: outcome,
        attachments: siblings.map((sibling) => ({
          taskId: sibling,
          attachment: { ok: false, error: serializeError(error), reason },
          delivered: false,
        })),
      }));
      this.lifecycle.log("submit_failed", requestId, {
        failure: result?.failure.kind ?? "no_slot",
        status: error.status,
      });
      await this.lifecycle.observe({ type: "rejected", at, reason });
      await this.deliverAttachments();
      return outcome;
    }
    // The upstream's answer lists one task per job, in its order: the first is ours, the
    // others go to the siblings in turn. Fewer jobs than charged: the rest are refunded;
    // more: unpaid upstream work, recorded for reconciliation.
    const [mine, ...others] = result.value.tasks;
    const attachments = siblings.map((sibling, i) => {
      const upstream = others[i];
      const attachment: SiblingAttachment = upstream
        ? {
            ok: true,
            upstreamTaskId: upstream.taskId,
            status: upstream.status,
            upstreamId: routed.upstreamId!,
          }
        : {
            ok: false,
            error: serializeError(
              new ApiError("upstream_bad_response", "the upstream made fewer jobs than requested"),
            ),
            reason: "the upstream made fewer jobs than requested",
          };
      return { taskId: sibling, attachment, delivered: false };
    });
    const unpricedUpstreamJobs = Math.max(0, others.length - siblings.length);
    if (unpricedUpstreamJobs) {
      logEvent("upstream_unpriced_jobs", { task_id: taskId, jobs: unpricedUpstreamJobs });
    }
    const outcome: SubmitOutcome = {
      ok: true,
      status: mine!.status,
      taskIds: [taskId, ...attachments.filter((a) => a.attachment.ok).map((a) => a.taskId)],
    };
    await span("task.accepted", async () => {
      await this.lifecycle.observe(
        { type: "accepted", at, upstreamStatus: mine!.status },
        requestId,
        (r) => ({
          ...r,
          meta: { ...r.meta, upstreamTaskId: mine!.taskId },
          submitOutcome: outcome,
          attachments,
          unpricedUpstreamJobs,
        }),
      );
      await this.deliverAttachments();
    });
    return outcome;
  }

  /** The upstream refused a /modal: refund the step now (unless it may still run), word the error. */
  private async modalFailed(
    step: string,
    failure: Parameters<typeof apiErrorForUpstream>[0],
    requestId: string,
  ): Promise<SubmitOutcome> {
    const error = apiErrorForUpstream(failure);
    const ambiguous = isAmbiguous(failure);
    const failed = this.lifecycle.apply({
      type: "modal_failed",
      at: this.clock.now(),
      step,
      ambiguous,
      reason: `modal refused upstream: ${error.message}`,
    });
    await this.lifecycle.settleNow(failed.effects); // refund before answering, not at the next alarm
    this.lifecycle.log("modal_failed", requestId, { failure: failure.kind, ambiguous });
    // An ambiguous failure keeps its charge until polling tells whether the upstream ran it.
    const told = ambiguous
      ? ApiError.fromWire(
          error.status,
          error.code,
          `${error.message}; the upstream may still run this /modal: the task's status will show it, and its charge is refunded if it did not run`,
          error.options,
        )
      : error;
    return refusedOutcome(this.translated(told));
  }

  /** Hands each sibling what the upstream gave it; what fails is retried by the alarm. */
  private async deliverAttachments(): Promise<void> {
    const pending = this.lifecycle.record()?.attachments?.filter((a) => !a.delivered) ?? [];
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
    this.lifecycle.update((r) => ({
      ...r,
      attachments: r.attachments?.map((a) => (done.has(a.taskId) ? { ...a, delivered: true } : a)),
    }));
  }

  /** The upstream's error, worded with our task ids. */
  private translated(error: ApiError): ApiError {
    const record = this.lifecycle.record();
    if (!record) return error;
    return ApiError.fromWire(
      error.status,
      error.code,
      translateIds(error.message, record.meta),
      error.options,
    );
  }
}

/** The member a task was submitted to; tasks recorded before the pool went to the default one. */
const upstreamOf = (record: TaskRecord) => record.upstreamId ?? DEFAULT_UPSTREAM_ID;

/** Every member was full by the time the task asked for a slot (the check before admission raced). */
const everyMemberFull = () =>
  new ApiError("upstream_busy", "every upstream is at capacity; the charge was refunded, retry shortly", {
    headers: { "Retry-After": "5" },
  });

const stillRunning = () =>
  refusedOutcome(new ApiError("idempotency_in_progress", "the original request is still running"));

function modalRefusalError(refusal: "modal_not_available" | "modal_expired" | "modal_in_progress"): ApiError {
  switch (refusal) {
    case "modal_expired":
      return new ApiError(
        "modal_expired",
        "the task waited in MODAL too long and was cancelled; start a new inpaint",
        { field: "task_id" },
      );
    case "modal_in_progress":
      return new ApiError("modal_not_available", "a /modal for this task is already being processed", {
        field: "task_id",
      });
    case "modal_not_available":
      return new ApiError("modal_not_available", "the task is not waiting in MODAL", {
        field: "task_id",
      });
  }
}
