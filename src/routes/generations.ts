import { createRoute, z } from "@hono/zod-openapi";
import { type AdmissionRequest, admit } from "../db/admission";
import { findIdempotencyRecord, forgetIdempotencyKey } from "../db/idempotency";
import type { KeyPrincipal } from "../db/tenants";
import { ACTIONS, type Action, FOLLOW_UP_ACTIONS } from "../domain/actions";
import { ApiError, notFoundTask } from "../domain/errors";
import { newTaskId } from "../domain/ids";
import { sha256Hex } from "../domain/keys";
import { quote } from "../domain/pricing";
import { toUpstreamIds } from "../domain/task-view";
import { deserializeError, type SubmitOutcome } from "../durable/task-object";
import { type AppContext, createRouter, errorResponses } from "../http";
import { checkActionAllowed } from "../middleware/auth";
import { cachedPriceBook } from "../pricing-cache";
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
      ...errorResponses(400, 401, 402, 403, 404, 409, 422, 429, 502, 504),
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
  const idempotencyKey = c.req.header("idempotency-key") ?? null;
  const requestHash = idempotencyKey ? await sha256Hex(`${action}\n${canonicalJson(body)}`) : "";
  if (body.task_id) c.set("taskId", body.task_id);

  if (action === "modal") return submitModal(c, principal, body, idempotencyKey, requestHash);

  const parent =
    FOLLOW_UP_ACTIONS.has(action) && body.task_id
      ? await resolveParent(c, principal, body.task_id, body.custom_id)
      : null;
  const book = await cachedPriceBook(c.env.DB);
  const cost = quote(
    {
      action,
      speed: body.speed,
      videoType: body.video_type,
      endUrl: body.end_url,
      batchSize: body.batch_size,
    },
    book,
    principal.tenant.price_multiplier_bps,
  ).totalMicros;

  const taskId = newTaskId();
  c.set("taskId", taskId);
  const admission: AdmissionRequest = {
    ...limitsOf(principal),
    taskId,
    action,
    parentTaskId: body.task_id ?? null,
    costMicros: cost,
    kind: "new_task",
    idempotency: idempotencyKey ? { key: idempotencyKey, requestHash } : null,
    at: Date.now(),
  };
  let admitted: Awaited<ReturnType<typeof admit>>;
  try {
    admitted = await admit(c.env.DB, admission);
  } catch (error) {
    if (
      error === "idempotency_conflict" ||
      (error instanceof Error && /UNIQUE constraint failed: idempotency/.test(error.message))
    ) {
      return replay(c, principal, idempotencyKey!, requestHash);
    }
    throw error;
  }
  setRateLimitHeaders(c, admitted.rateLimit);

  const forwardBody = toUpstreamBody(body, parent);
  const outcome = await c.env.TASKS.get(c.env.TASKS.idFromName(taskId)).start({
    meta: {
      taskId,
      tenantId: principal.tenant.id,
      keyId: principal.key.id,
      action,
      parentTaskId: body.task_id ?? null,
      upstreamParentId: parent?.upstreamTaskId ?? null,
      upstreamTaskId: null,
      costMicros: cost,
      prompt: typeof body.prompt === "string" ? body.prompt : null,
      metadata: body.metadata ?? null,
    },
    body: forwardBody,
    requestId: c.get("requestId"),
  });
  if (!outcome.ok && idempotencyKey)
    await forgetIdempotencyKey(c.env.DB, principal.tenant.id, idempotencyKey);
  return respond(c, taskId, outcome);
}

async function submitModal(
  c: AppContext,
  principal: KeyPrincipal,
  body: GenerationBody,
  idempotencyKey: string | null,
  requestHash: string,
): Promise<Response> {
  const taskId = body.task_id!;
  const book = await cachedPriceBook(c.env.DB);
  const cost = quote(
    { action: "modal", speed: body.speed },
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

function limitsOf(principal: KeyPrincipal) {
  return {
    tenantId: principal.tenant.id,
    keyId: principal.key.id,
    rpmLimit: principal.key.rpm_limit,
    dailyCap: principal.key.daily_cap,
    monthlyCap: principal.key.monthly_cap,
  };
}

/** A follow-up's parent must be the same tenant's (else 404, as if it did not exist) and finished. */
async function resolveParent(c: AppContext, principal: KeyPrincipal, parentId: string, customId?: string) {
  const info = await c.env.TASKS.get(c.env.TASKS.idFromName(parentId)).parentInfo(principal.tenant.id);
  if (!info) throw notFoundTask(parentId);
  if (info.status !== "SUCCESS" || !info.upstreamTaskId) {
    throw new ApiError(400, "parent_not_ready", `task ${parentId} is not in SUCCESS state`, {
      field: "task_id",
    });
  }
  // All tenants share one upstream key, so a customId must be one of this parent's own
  // buttons: an upstream that resolves customIds by themselves must never see another tenant's.
  if (customId !== undefined && !info.customIds.includes(customId)) {
    throw new ApiError(400, "invalid_request", `custom_id: not one of task ${parentId}'s buttons`, {
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
    throw new ApiError(
      409,
      "idempotency_in_progress",
      "a request with this Idempotency-Key just failed; retry",
      {
        headers: { "Retry-After": "1" },
      },
    );
  }
  if (record.request_hash !== requestHash) {
    throw new ApiError(
      422,
      "idempotency_key_reused",
      "this Idempotency-Key was used with a different request",
    );
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

function respond(c: AppContext, taskId: string, outcome: SubmitOutcome): Response {
  if (!outcome.ok) throw deserializeError(outcome.error);
  return c.json({ code: 200 as const, data: [{ status: outcome.status, task_id: taskId }] }, 200);
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
