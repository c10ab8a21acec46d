import { createRoute, z } from "@hono/zod-openapi";
import {
  type AdmissionRequest,
  type AdmittedTask,
  admit,
  IdempotencyKeyTaken,
  KeyNotUsable,
} from "../db/admission";
import { findIdempotencyRecord, forgetIdempotencyKey } from "../db/idempotency";
import { findPrincipalByKeyId, type KeyPrincipal } from "../db/tenants";
import { ACTIONS, type Action, FOLLOW_UP_ACTIONS } from "../domain/actions";
import { type BillableParams, billableParams, UnbillableRequest } from "../domain/billable-params";
import { ApiError, notFoundTask } from "../domain/errors";
import { newTaskId } from "../domain/ids";
import { sha256Hex } from "../domain/keys";
import { quote } from "../domain/pricing";
import { toUpstreamIds } from "../domain/task-view";
import { deserializeError, type SubmitOutcome } from "../durable/task-object";
import { type AppContext, createRouter, errorResponses } from "../http";
import { checkActionAllowed, checkPrincipal } from "../middleware/auth";
import { cachedPriceBook } from "../pricing-cache";
import { jsonBodyStream } from "../upstream/json-stream";
import { type GenerationBody, generationSchemas, SubmitResponse } from "./generations.schemas";

export const generations = createRouter();

const IDEMPOTENCY_KEY = z.string().min(1).max(255).optional().openapi({
  description:
    "Retries with the same key and body replay the first answer without a second charge (kept 24 h).",
});

function routeFor(action: Action, path: string) {
  return createRoute({
    method: "post",
    path,
    tags: ["Generations"],
    summary:
      action === "imagine" && path.endsWith("generations") ? "imagine (no action in the path)" : action,
    security: [{ subKey: [] }],
    request: {
      headers: z.object({ "idempotency-key": IDEMPOTENCY_KEY }),
      body: { required: true, content: { "application/json": { schema: generationSchemas[action] } } },
    },
    responses: {
      200: {
        description: "accepted: the task id to poll or subscribe to",
        content: { "application/json": { schema: SubmitResponse } },
      },
      ...errorResponses(400, 401, 402, 403, 404, 409, 413, 422, 429, 502, 504),
    },
  });
}

for (const action of ACTIONS) {
  generations.openapi(
    routeFor(action, `/v1/midjourney/generations/${action}`),
    async (c) => (await submit(c, action, c.req.valid("json") as GenerationBody)) as never,
  );
}
generations.openapi(
  routeFor("imagine", "/v1/midjourney/generations"),
  async (c) => (await submit(c, "imagine", c.req.valid("json") as GenerationBody)) as never,
);

async function submit(c: AppContext, action: Action, body: GenerationBody): Promise<Response> {
  const principal = c.get("principal");
  checkActionAllowed(principal, action);
  const billable = billableOrRefuse(action, body);
  const idempotencyKey = c.req.header("idempotency-key") ?? null;
  const requestHash = idempotencyKey ? await sha256Hex(`${action}\n${canonicalJson(body)}`) : "";
  if (body.task_id) c.set("taskId", body.task_id);

  if (action === "modal") return submitModal(c, principal, body, billable, idempotencyKey, requestHash);

  const parent =
    FOLLOW_UP_ACTIONS.has(action) && body.task_id
      ? await resolveParent(c, principal, body.task_id, body.custom_id)
      : null;
  const book = await cachedPriceBook(c.env.DB);
  // Every job the upstream will run is one task with its own charge, at the price of one job.
  const cost = quote(
    pricedRequest(action, billable),
    book,
    principal.tenant.price_multiplier_bps,
  ).totalMicros;
  const taskId = newTaskId();
  const siblings: AdmittedTask[] = Array.from({ length: billable.jobs - 1 }, () => ({
    taskId: newTaskId(),
    costMicros: cost,
  }));
  c.set("taskId", taskId);
  const admission: AdmissionRequest = {
    ...limitsOf(principal),
    taskId,
    action,
    parentTaskId: body.task_id ?? null,
    costMicros: cost,
    siblings,
    kind: "new_task",
    idempotency: idempotencyKey ? { key: idempotencyKey, requestHash } : null,
    at: Date.now(),
  };
  let admitted: Awaited<ReturnType<typeof admit>>;
  try {
    admitted = await admit(c.env.DB, admission);
  } catch (error) {
    if (error instanceof IdempotencyKeyTaken) return replay(c, principal, idempotencyKey!, requestHash);
    if (error instanceof KeyNotUsable) return refuseStaleKey(c, principal);
    throw error;
  }
  setRateLimitHeaders(c, admitted.rateLimit);

  const meta = (id: string) => ({
    taskId: id,
    tenantId: principal.tenant.id,
    keyId: principal.key.id,
    action,
    parentTaskId: body.task_id ?? null,
    upstreamParentId: parent?.upstreamTaskId ?? null,
    upstreamTaskId: null,
    costMicros: cost,
    prompt: typeof body.prompt === "string" ? body.prompt : null,
    metadata: body.metadata ?? null,
  });
  const requestId = c.get("requestId");
  // Siblings are recorded before the lead forwards, so every charge has an object that settles it.
  await Promise.all(
    siblings.map((sibling) =>
      taskStub(c, sibling.taskId).awaitLead({ meta: meta(sibling.taskId), leadTaskId: taskId, requestId }),
    ),
  );
  const outcome = await taskStub(c, taskId).start(
    { meta: meta(taskId), requestId, siblings: siblings.map((s) => s.taskId) },
    jsonBodyStream(toUpstreamBody(body, parent)),
  );
  if (!outcome.ok && idempotencyKey)
    await forgetIdempotencyKey(c.env.DB, principal.tenant.id, idempotencyKey);
  return respond(c, taskId, outcome);
}

const taskStub = (c: AppContext, taskId: string) => c.env.TASKS.get(c.env.TASKS.idFromName(taskId));

/** What changes the upstream's bill, from the fields and the prompt; what cannot be priced is a 400. */
function billableOrRefuse(action: Action, body: GenerationBody): BillableParams {
  try {
    return billableParams(action, body);
  } catch (error) {
    if (error instanceof UnbillableRequest) {
      throw new ApiError("invalid_request", error.message, { field: error.field });
    }
    throw error;
  }
}

function pricedRequest(action: Action, billable: BillableParams) {
  return {
    action,
    speed: billable.speed ?? undefined,
    videoType: billable.videoHd ? "vid_1.1_i2v_720" : "vid_1.1_i2v_480",
    batchSize: billable.videoBatch,
  };
}

/**
 * Admission found the key or its tenant no longer usable (D1 is the truth; this isolate's
 * cache was older): answer exactly why, from a fresh read.
 */
async function refuseStaleKey(c: AppContext, principal: KeyPrincipal): Promise<never> {
  checkPrincipal(await findPrincipalByKeyId(c.env.DB, principal.key.id));
  throw new ApiError("key_disabled", "the API key is not usable");
}

async function submitModal(
  c: AppContext,
  principal: KeyPrincipal,
  body: GenerationBody,
  billable: BillableParams,
  idempotencyKey: string | null,
  requestHash: string,
): Promise<Response> {
  const taskId = body.task_id!;
  const book = await cachedPriceBook(c.env.DB);
  const cost = quote(
    pricedRequest("modal", billable),
    book,
    principal.tenant.price_multiplier_bps,
  ).totalMicros;
  const stub = c.env.TASKS.get(c.env.TASKS.idFromName(taskId));
  if (idempotencyKey) {
    const existing = await findIdempotencyRecord(c.env.DB, principal.tenant.id, idempotencyKey);
    if (existing) return replay(c, principal, idempotencyKey, requestHash, "modal");
  }
  const { task_id: _ours, ...rest } = body;
  const outcome = await stub.modal({
    tenantId: principal.tenant.id,
    keyId: principal.key.id,
    body: rest,
    admission: {
      ...limitsOf(principal),
      action: "modal",
      costMicros: cost,
      idempotency: idempotencyKey ? { key: idempotencyKey, requestHash } : null,
      at: Date.now(),
    },
    requestId: c.get("requestId"),
  });
  if (!outcome.ok && outcome.error.code === "task_not_found") throw notFoundTask(taskId);
  // A /modal that failed releases its key (if it got that far), so a retry is a new attempt.
  if (!outcome.ok && idempotencyKey)
    await forgetIdempotencyKey(c.env.DB, principal.tenant.id, idempotencyKey);
  return respond(c, taskId, outcome);
}

/** Who is admitted; the limits themselves are read from D1 inside the admission batch. */
function limitsOf(principal: KeyPrincipal) {
  return {
    tenantId: principal.tenant.id,
    keyId: principal.key.id,
    rpmLimitHint: principal.key.rpm_limit,
  };
}

/** A follow-up's parent must be the same tenant's (else 404, as if it did not exist) and finished. */
async function resolveParent(c: AppContext, principal: KeyPrincipal, parentId: string, customId?: string) {
  const info = await c.env.TASKS.get(c.env.TASKS.idFromName(parentId)).parentInfo(principal.tenant.id);
  if (!info) throw notFoundTask(parentId);
  if (info.status !== "SUCCESS" || !info.upstreamTaskId) {
    throw new ApiError("parent_not_ready", `task ${parentId} is not in SUCCESS state`, {
      field: "task_id",
    });
  }
  // All tenants share one upstream key, so a customId must be one of this parent's own
  // buttons: an upstream that resolves customIds by themselves must never see another tenant's.
  if (customId !== undefined && !info.customIds.includes(customId)) {
    throw new ApiError("invalid_request", `custom_id: not one of task ${parentId}'s buttons`, {
      field: "custom_id",
    });
  }
  return { id: parentId, upstreamTaskId: info.upstreamTaskId };
}

/** The body the upstream sees: the parent's upstream id instead of ours, everywhere it appears. */
function toUpstreamBody(body: GenerationBody, parent: { id: string; upstreamTaskId: string } | null) {
  if (!parent) return { ...body };
  const translated = JSON.parse(toUpstreamIds(JSON.stringify(body), parent.id, parent.upstreamTaskId));
  return { ...translated, task_id: parent.upstreamTaskId };
}

async function replay(
  c: AppContext,
  principal: KeyPrincipal,
  idempotencyKey: string,
  requestHash: string,
  step: "submit" | "modal" = "submit",
) {
  const record = await findIdempotencyRecord(c.env.DB, principal.tenant.id, idempotencyKey);
  if (!record) {
    throw new ApiError("idempotency_in_progress", "a request with this Idempotency-Key just failed; retry", {
      headers: { "Retry-After": "1" },
    });
  }
  if (record.request_hash !== requestHash) {
    throw new ApiError("idempotency_key_reused", "this Idempotency-Key was used with a different request");
  }
  c.set("taskId", record.task_id);
  const outcome = await c.env.TASKS.get(c.env.TASKS.idFromName(record.task_id)).submitOutcome(
    principal.tenant.id,
    step,
  );
  c.header("Idempotent-Replayed", "true");
  return respond(
    c,
    record.task_id,
    outcome ?? {
      ok: false,
      error: {
        status: 409,
        code: "idempotency_in_progress",
        message: "the original request is still running",
      },
    },
  );
}

/** The upstream's answer shape: one entry per task, in the upstream's order (several with `repeat`). */
function respond(c: AppContext, taskId: string, outcome: SubmitOutcome): Response {
  if (!outcome.ok) throw deserializeError(outcome.error);
  const ids = outcome.taskIds?.length ? outcome.taskIds : [taskId];
  return c.json(
    { code: 200 as const, data: ids.map((id) => ({ status: outcome.status, task_id: id })) },
    200,
  );
}

function setRateLimitHeaders(
  c: AppContext,
  limit: { limit: number; remaining: number; resetSeconds: number },
) {
  c.header("RateLimit-Limit", String(limit.limit));
  c.header("RateLimit-Remaining", String(limit.remaining));
  c.header("RateLimit-Reset", String(limit.resetSeconds));
}

/** Key order does not change what a request means, so it does not change its idempotency hash. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}
