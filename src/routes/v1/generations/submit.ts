import { createRoute, z } from "@hono/zod-openapi";
import type { KeyPrincipal } from "../../../db/tenants";
import { ACTIONS, type Action, FOLLOW_UP_ACTIONS } from "../../../domain/actions";
import { type BillableParams, billableParams, UnbillableRequest } from "../../../domain/billable-params";
import { ApiError, notFoundTask } from "../../../domain/errors";
import { newTaskId } from "../../../domain/ids";
import { sha256Hex } from "../../../domain/keys";
import { toUpstreamIds } from "../../../domain/task-view";
import { configFrom } from "../../../env";
import { type AppContext, createRouter, errorResponses } from "../../../http";
import { checkActionAllowed } from "../../../middleware/auth";
import { resolveAssetInputs } from "../../../services/asset-inputs";
import * as billing from "../../../services/billing";
import { type GenerationBody, generationSchemas, SubmitResponse } from "./schemas";

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
      ...errorResponses(400, 401, 402, 403, 404, 409, 413, 422, 429, 502, 503, 504),
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
  const idempotency = idempotencyKey
    ? { key: idempotencyKey, requestHash: await sha256Hex(`${action}\n${canonicalJson(body)}`) }
    : null;
  const requestId = c.get("requestId");
  if (body.task_id) c.set("taskId", body.task_id);

  if (action === "modal") {
    const { task_id: _ours, ...rest } = body;
    const answer = await billing.submitModal(c.env, {
      principal,
      billable,
      taskId: body.task_id!,
      body: await ownInputsResolved(c, principal, rest),
      idempotency,
      requestId,
    });
    return respond(c, answer);
  }

  const parent =
    FOLLOW_UP_ACTIONS.has(action) && body.task_id
      ? await resolveParent(c, principal, body.task_id, body.custom_id)
      : null;
  const taskId = newTaskId();
  c.set("taskId", taskId);
  const answer = await billing.submit(c.env, {
    principal,
    action,
    billable,
    taskId,
    parent,
    prompt: typeof body.prompt === "string" ? body.prompt : null,
    metadata: body.metadata ?? null,
    upstreamBody: await ownInputsResolved(c, principal, toUpstreamBody(body, parent)),
    idempotency,
    requestId,
  });
  return respond(c, answer);
}

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
  return { id: parentId, upstreamTaskId: info.upstreamTaskId, upstreamId: info.upstreamId };
}

/** The body the upstream sees: the parent's upstream id instead of ours, everywhere it appears. */
function toUpstreamBody(body: GenerationBody, parent: { upstreamTaskId: string; id: string } | null) {
  if (!parent) return { ...body };
  const translated = JSON.parse(toUpstreamIds(JSON.stringify(body), parent.id, parent.upstreamTaskId));
  return { ...translated, task_id: parent.upstreamTaskId };
}

/** Inputs that are this gateway's hosted files reach the upstream as fresh signed links (or a 400). */
function ownInputsResolved<T extends Record<string, unknown>>(
  c: AppContext,
  principal: KeyPrincipal,
  body: T,
) {
  return resolveAssetInputs(c.env, configFrom(c.env), principal.tenant.id, body, Date.now());
}

/** The upstream's answer shape: one entry per task, in the upstream's order (several with `repeat`). */
function respond(c: AppContext, answer: billing.SubmitAnswer): Response {
  c.set("taskId", answer.taskId);
  if (answer.replayed) c.header("Idempotent-Replayed", "true");
  if (answer.rateLimit) {
    c.header("RateLimit-Limit", String(answer.rateLimit.limit));
    c.header("RateLimit-Remaining", String(answer.rateLimit.remaining));
    c.header("RateLimit-Reset", String(answer.rateLimit.resetSeconds));
  }
  if (!answer.ok) throw answer.error;
  return c.json(
    { code: 200 as const, data: answer.taskIds.map((id) => ({ status: answer.status, task_id: id })) },
    200,
  );
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
