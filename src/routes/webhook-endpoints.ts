/** Registering a webhook endpoint: shared by the operator's and the tenant's create routes. */
import { z } from "@hono/zod-openapi";
import { getKey } from "../db/tenants";
import { createEndpoint } from "../db/webhooks";
import { ApiError } from "../domain/errors";
import {
  MAX_WEBHOOK_ENDPOINTS_PER_TENANT,
  MAX_WEBHOOK_PAYLOAD_BYTES,
  webhookUrlProblem,
} from "../domain/webhooks";
import type { AppContext } from "../http";
import { logEvent } from "../log";
import { type EndpointInput, EndpointSchema, endpointJson } from "../schemas/webhook";
import { json } from "./helpers";

export const ENDPOINT_RULES = `A tenant has at most ${MAX_WEBHOOK_ENDPOINTS_PER_TENANT} active endpoints (disabled ones do not count): one more is a 409 \`webhook_endpoint_limit\`. Disabling an endpoint fails its pending deliveries (no more retries). A message body is at most ${MAX_WEBHOOK_PAYLOAD_BYTES / 1024} KiB: a larger task view is sent with \`"truncated": true\` and only its scalar fields (fetch GET /v1/tasks/{id}).`;

export const endpointCreated = {
  201: json(
    EndpointSchema.extend({ secret: z.string() }),
    "the endpoint, with its signing secret (shown once)",
  ),
};
export const endpointsListed = { 200: json(z.object({ data: z.array(EndpointSchema) }), "endpoints") };

export async function registerEndpoint(c: AppContext, tenantId: string, input: EndpointInput) {
  const problem = webhookUrlProblem(input.url, c.env.ENVIRONMENT === "development");
  if (problem) throw new ApiError("invalid_request", `url: ${problem}`, { field: "url" });
  if (input.key_id && !(await getKey(c.env.DB, tenantId, input.key_id))) {
    throw new ApiError("invalid_request", "key_id: no such key for this tenant", { field: "key_id" });
  }
  const row = await createEndpoint(c.env.DB, {
    tenantId,
    keyId: input.key_id ?? null,
    url: input.url,
    secret: input.secret,
    events: input.events,
  });
  if (!row) {
    throw new ApiError(
      "webhook_endpoint_limit",
      `a tenant can have at most ${MAX_WEBHOOK_ENDPOINTS_PER_TENANT} active webhook endpoints; disable one first`,
    );
  }
  // The tenant's running tasks learn of it after this answers (see tellRunningTasks).
  c.executionCtx.waitUntil(tellRunningTasks(c, tenantId));
  // The secret is shown once, like a key.
  return c.json({ ...endpointJson(row), secret: row.secret }, 201);
}

/**
 * Tasks admitted while the tenant had no endpoints do no webhook work; its hub tells each
 * open one that now it should. A lost call costs the task's events until its terminal one,
 * which settlement still finds.
 */
async function tellRunningTasks(c: AppContext, tenantId: string): Promise<void> {
  try {
    await c.env.TENANT_HUB.get(c.env.TENANT_HUB.idFromName(tenantId)).webhooksChanged();
  } catch (error) {
    logEvent("webhooks_change_not_told", { tenant_id: tenantId, error: String(error) });
  }
}

export const webhookNotFound = (webhookId: string) =>
  new ApiError("not_found", `webhook ${webhookId} not found`, { field: "webhook_id" });
