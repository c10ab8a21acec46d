/**
 * What a submit, a /modal and a settlement do to money, in one place.
 *
 * A submit: quote (one price per upstream job) → admit (ONE D1 batch: rate window, in-flight
 * slots, balance, spend caps, a charge and a task row per job, the idempotency row) → hand
 * the tasks to their TaskObjects, which forward → a refused forward releases the
 * Idempotency-Key so the retry is a new attempt (its charge is refunded by the task's state
 * machine, src/domain/task-machine.ts, the one place that decides refunds). A retry with a
 * taken key replays the first answer and charges nothing.
 *
 * A /modal: quote → the task's object asks `admitModalStep` to charge the step (its own
 * charge, refundable alone) → the object forwards → a refused /modal releases the key.
 *
 * Settlement: the task's object (and the orphan sweep) settle, refund a step or record a
 * late upstream report through `settle`, `refundStep` and `recordLateUpstreamStatus`.
 *
 * `db/admission.ts` holds the statements and answers typed refusals; which error a client
 * sees for each refusal is decided here.
 */
import {
  type AdmissionRequest,
  type AdmittedTask,
  admit,
  RATE_WINDOW_MS,
  type RateLimitState,
  recordLateUpstreamStatus as recordLateUpstreamStatusInDb,
  refundStep as refundStepInDb,
  type Settlement,
  type SettleRequest,
  settleTask,
  settleTaskAskingWebhooks,
  windowStart,
} from "../db/admission";
import type { DbRefusal } from "../db/constraints";
import { findIdempotencyRecord, forgetIdempotencyKey } from "../db/idempotency";
import { findPrincipalByKeyId, type KeyPrincipal } from "../db/tenants";
import type { Action } from "../domain/actions";
import type { BillableParams } from "../domain/billable-params";
import { ApiError, notFoundTask } from "../domain/errors";
import { newTaskId } from "../domain/ids";
import { quote } from "../domain/pricing";
import type { TaskMeta } from "../domain/task-view";
import { deserializeError, type ModalAdmission, type SubmitOutcome } from "../durable/task/contract";
import type { Env } from "../env";
import { checkPrincipal } from "../middleware/auth";
import { cachedPriceBook } from "../pricing-cache";
import { span } from "../spans";
import { jsonBodyStream } from "../upstream/json-stream";
import { routeFor } from "./upstream-pool";

/** A submit as the route parsed it: who, what, and the body the upstream will see. */
export interface SubmitRequest {
  principal: KeyPrincipal;
  action: Action;
  billable: BillableParams;
  /** The lead task's id, minted by the caller (so its logs can name it before the answer). */
  taskId: string;
  /** The task this follow-up continues (ours) and its upstream id, checked by the caller. */
  parent: { id: string; upstreamTaskId: string; upstreamId: string } | null;
  prompt: string | null;
  metadata: TaskMeta["metadata"];
  upstreamBody: Record<string, unknown>;
  idempotency: { key: string; requestHash: string } | null;
  requestId: string;
}

export interface ModalRequest {
  principal: KeyPrincipal;
  billable: BillableParams;
  taskId: string;
  /** The /modal body without our task id (the object puts the upstream's in). */
  body: Record<string, unknown>;
  idempotency: { key: string; requestHash: string } | null;
  requestId: string;
}

/**
 * What the client is told: its tasks (lead first), or the error of a refused forward (its
 * charge is refunded by the task), with the rate limit of a fresh admission either way.
 */
export type SubmitAnswer = {
  /** The lead task. */
  taskId: string;
  rateLimit: RateLimitState | null;
  /** The answer of an earlier request with the same Idempotency-Key, charged nothing now. */
  replayed: boolean;
} & ({ ok: true; taskIds: string[]; status: "submitted" | "modal" } | { ok: false; error: ApiError });

export async function submit(env: Env, request: SubmitRequest): Promise<SubmitAnswer> {
  const { principal, taskId } = request;
  // Every job the upstream will run is one task with its own charge, at the price of one job.
  const cost = await priceOf(env, principal, request.action, request.billable);
  const siblings: AdmittedTask[] = Array.from({ length: request.billable.jobs - 1 }, () => ({
    taskId: newTaskId(),
    costMicros: cost,
  }));
  const admission: AdmissionRequest = {
    ...whoIsAdmitted(principal),
    taskId,
    action: request.action,
    parentTaskId: request.parent?.id ?? null,
    costMicros: cost,
    siblings,
    kind: "new_task",
    idempotency: request.idempotency,
    at: Date.now(),
  };
  // Where the task can go, and whether the tenant may submit at all, are decided first: a full
  // or unavailable pool, or a tenant cooling down after moderation failures, charges nothing.
  const route = await span("submit.route_and_moderation", () =>
    Promise.all([
      routeFor(env, request.action, request.parent?.upstreamId ?? null, { tenantId: principal.tenant.id }),
      checkModeration(env, principal.tenant.id),
    ]),
  )
    .then(([candidates]) => candidates)
    .catch(async (error: unknown) => {
      // A retry of a request already answered replays that answer, refused now or not.
      const { idempotency } = request;
      if (idempotency && (await findIdempotencyRecord(env.DB, principal.tenant.id, idempotency.key)))
        return null;
      throw error;
    });
  if (route === null) return replay(env, principal, request.idempotency!);
  const admitted = await span("submit.admission", () => admit(env.DB, admission));
  if (!admitted.ok) {
    if (admitted.refusal === "idempotency_taken") return replay(env, principal, request.idempotency!);
    if (admitted.refusal === "key_usable") return refuseStaleKey(env, principal);
    throw admissionError(admitted.refusal, admission);
  }

  const meta = (id: string): TaskMeta => ({
    taskId: id,
    tenantId: principal.tenant.id,
    keyId: principal.key.id,
    action: request.action,
    parentTaskId: request.parent?.id ?? null,
    upstreamParentId: request.parent?.upstreamTaskId ?? null,
    upstreamTaskId: null,
    costMicros: cost,
    prompt: request.prompt,
    metadata: request.metadata,
    webhooks: admitted.webhooks,
    hosted: principal.tenant.asset_mode === "hosted",
  });
  const { requestId } = request;
  // Siblings are recorded before the lead forwards, so every charge has an object that settles it.
  await Promise.all(
    siblings.map((sibling) =>
      taskStub(env, sibling.taskId).awaitLead({ meta: meta(sibling.taskId), leadTaskId: taskId, requestId }),
    ),
  );
  const outcome = await span("submit.object_start", async () =>
    taskStub(env, taskId).start(
      { meta: meta(taskId), requestId, siblings: siblings.map((s) => s.taskId), route },
      jsonBodyStream(request.upstreamBody),
    ),
  );
  await releaseKeyOnRefusal(env, principal, request.idempotency, outcome);
  return answerOf(taskId, outcome, { rateLimit: admitted.rateLimit });
}

/** Refuses a submit of a tenant whose prompts the upstream keeps failing for moderation (its hub judges). */
async function checkModeration(env: Env, tenantId: string): Promise<void> {
  const hub = env.TENANT_HUB.get(env.TENANT_HUB.idFromName(tenantId));
  const verdict = await hub.moderationCheck(tenantId, Date.now());
  if (verdict.kind === "ok") return;
  const retryAfter = String(Math.max(1, Math.ceil(verdict.retryAfterMs / 1000)));
  if (verdict.kind === "slowed") {
    throw new ApiError(
      "tenant_moderation_slowed",
      `the upstream failed several of this tenant's prompts for moderation: one submit every while; retry in ${retryAfter} s`,
      { headers: { "Retry-After": retryAfter } },
    );
  }
  throw new ApiError(
    "tenant_moderation_cooldown",
    `the upstream failed too many of this tenant's prompts for moderation: submits are refused for ${retryAfter} s`,
    { headers: { "Retry-After": retryAfter } },
  );
}

/** POST /generations/modal: the task's object charges the step (`admitModalStep`) and forwards. */
export async function submitModal(env: Env, request: ModalRequest): Promise<SubmitAnswer> {
  const { principal, taskId } = request;
  const cost = await priceOf(env, principal, "modal", request.billable);
  if (request.idempotency) {
    const existing = await findIdempotencyRecord(env.DB, principal.tenant.id, request.idempotency.key);
    if (existing) return replay(env, principal, request.idempotency, "modal");
  }
  const outcome = await taskStub(env, taskId).modal({
    tenantId: principal.tenant.id,
    keyId: principal.key.id,
    body: request.body,
    admission: {
      ...whoIsAdmitted(principal),
      action: "modal",
      costMicros: cost,
      idempotency: request.idempotency,
      at: Date.now(),
    },
    requestId: request.requestId,
  });
  if (!outcome.ok && outcome.error.code === "task_not_found") throw notFoundTask(taskId);
  // A /modal that failed releases its key (if it got that far), so a retry is a new attempt.
  await releaseKeyOnRefusal(env, principal, request.idempotency, outcome);
  return answerOf(taskId, outcome);
}

/**
 * Charges one /modal step of a task that already holds its in-flight slot. Called by the
 * task's object between "the machine accepts a /modal" and forwarding it; a refusal is the
 * error the client sees, and the object releases the step.
 */
export async function admitModalStep(db: D1Database, request: ModalAdmission): Promise<ApiError | null> {
  const admission: AdmissionRequest = { ...request, kind: "modal" };
  const admitted = await admit(db, admission);
  return admitted.ok ? null : admissionError(admitted.refusal, admission);
}

/** Settles a task exactly once (slots freed, the machine's refunds written); true if this call did. */
export const settle = (db: D1Database, request: SettleRequest): Promise<boolean> => settleTask(db, request);

/**
 * `settle` for the task's own object: also answers (same batch) whether its tenant has
 * webhook endpoints for it now, so its terminal event reaches an endpoint registered while
 * it ran even if nobody told the object.
 */
export const settleAskingWebhooks = (
  db: D1Database,
  owner: { tenantId: string; keyId: string },
  request: SettleRequest,
): Promise<Settlement> => settleTaskAskingWebhooks(db, request, owner);

/** Refunds one step of an open task (a /modal that did not run); true if this call wrote it. */
export const refundStep = (
  db: D1Database,
  request: { taskId: string; step: string; reason: string; at: number },
): Promise<boolean> => refundStepInDb(db, request);

/** The upstream reported a status after we settled: kept beside the task for reconciliation. */
export const recordLateUpstreamStatus = (db: D1Database, taskId: string, status: string): Promise<void> =>
  recordLateUpstreamStatusInDb(db, taskId, status);

async function priceOf(env: Env, principal: KeyPrincipal, action: Action, billable: BillableParams) {
  const book = await cachedPriceBook(env.DB);
  return quote(
    {
      action,
      speed: billable.speed ?? undefined,
      videoType: billable.videoHd ? "vid_1.1_i2v_720" : "vid_1.1_i2v_480",
      batchSize: billable.videoBatch,
    },
    book,
    principal.tenant.price_multiplier_bps,
  ).totalMicros;
}

/** Who is admitted; the limits themselves are read from D1 inside the admission batch. */
function whoIsAdmitted(principal: KeyPrincipal) {
  return {
    tenantId: principal.tenant.id,
    keyId: principal.key.id,
    rpmLimitHint: principal.key.rpm_limit,
  };
}

async function releaseKeyOnRefusal(
  env: Env,
  principal: KeyPrincipal,
  idempotency: { key: string } | null,
  outcome: SubmitOutcome,
): Promise<void> {
  if (!outcome.ok && idempotency) await forgetIdempotencyKey(env.DB, principal.tenant.id, idempotency.key);
}

/**
 * Admission found the key or its tenant no longer usable (D1 is the truth; this isolate's
 * cache was older): answer exactly why, from a fresh read.
 */
async function refuseStaleKey(env: Env, principal: KeyPrincipal): Promise<never> {
  checkPrincipal(await findPrincipalByKeyId(env.DB, principal.key.id));
  throw new ApiError("key_disabled", "the API key is not usable");
}

/** A retry with a taken Idempotency-Key: the first request's answer, if it has one and the body matches. */
async function replay(
  env: Env,
  principal: KeyPrincipal,
  idempotency: { key: string; requestHash: string },
  step: "submit" | "modal" = "submit",
): Promise<SubmitAnswer> {
  const record = await findIdempotencyRecord(env.DB, principal.tenant.id, idempotency.key);
  if (!record) {
    throw new ApiError("idempotency_in_progress", "a request with this Idempotency-Key just failed; retry", {
      headers: { "Retry-After": "1" },
    });
  }
  if (record.request_hash !== idempotency.requestHash) {
    throw new ApiError("idempotency_key_reused", "this Idempotency-Key was used with a different request");
  }
  const outcome = await taskStub(env, record.task_id).submitOutcome(principal.tenant.id, step);
  return answerOf(
    record.task_id,
    outcome ?? {
      ok: false,
      error: {
        status: 409,
        code: "idempotency_in_progress",
        message: "the original request is still running",
      },
    },
    { replayed: true },
  );
}

/** A refused outcome is the client's error; an accepted one lists every task, lead first. */
function answerOf(
  taskId: string,
  outcome: SubmitOutcome,
  { rateLimit = null, replayed = false }: { rateLimit?: RateLimitState | null; replayed?: boolean } = {},
): SubmitAnswer {
  if (!outcome.ok) return { ok: false, error: deserializeError(outcome.error), taskId, rateLimit, replayed };
  const taskIds = outcome.taskIds?.length ? outcome.taskIds : [taskId];
  return { ok: true, taskIds, status: outcome.status, taskId, rateLimit, replayed };
}

/** What the client sees for a refusal of the admission batch. */
function admissionError(refusal: DbRefusal, request: AdmissionRequest): ApiError {
  const resetSeconds = Math.max(1, Math.ceil((windowStart(request.at) + RATE_WINDOW_MS - request.at) / 1000));
  switch (refusal) {
    case "balance_nonnegative":
      return new ApiError("insufficient_balance", "the tenant's balance does not cover this action");
    case "rate_limit":
      return new ApiError("rate_limited", "this key's requests-per-minute limit is reached", {
        headers: {
          "Retry-After": String(resetSeconds),
          ...(request.rpmLimitHint ? { "RateLimit-Limit": String(request.rpmLimitHint) } : {}),
          "RateLimit-Remaining": "0",
          "RateLimit-Reset": String(resetSeconds),
        },
      });
    case "key_inflight_cap":
      return new ApiError("too_many_tasks", "this key has too many tasks in flight", {
        headers: { "Retry-After": "5" },
      });
    case "tenant_inflight_cap":
      return new ApiError("too_many_tasks", "this tenant has too many tasks in flight", {
        headers: { "Retry-After": "5" },
      });
    case "key_budget":
      return new ApiError("key_budget_exceeded", "this key's daily or monthly spend cap would be exceeded");
    case "task_already_settled":
      return new ApiError("modal_not_available", "the task has already ended; start a new inpaint", {
        field: "task_id",
      });
    case "charge_step_exists":
      return new ApiError("modal_not_available", "this step of the task has already been charged", {
        field: "task_id",
      });
    case "key_usable":
      return new ApiError("key_disabled", "the API key or its tenant is no longer active");
    case "idempotency_taken":
      return new ApiError("idempotency_in_progress", "a request with this Idempotency-Key is running", {
        headers: { "Retry-After": "1" },
      });
    default:
      // Admission writes no refund, edits no ledger row, always names the step and touches no
      // other table's constraints: reaching any other refusal is a bug, not a refusal.
      throw new Error(`admission refused by ${refusal}, which it never writes`);
  }
}

const taskStub = (env: Env, taskId: string) => env.TASKS.get(env.TASKS.idFromName(taskId));
