import { createRoute, z } from "@hono/zod-openapi";
import { getKey } from "../db/tenants";
import {
  attemptsOf,
  createEndpoint,
  type DeliveryRow,
  deleteEndpoint,
  type EndpointRow,
  getDelivery,
  listDeliveries,
  listEndpoints,
  recordAttempt,
} from "../db/webhooks";
import { ApiError } from "../domain/errors";
import {
  MAX_WEBHOOK_ENDPOINTS_PER_TENANT,
  MAX_WEBHOOK_PAYLOAD_BYTES,
  webhookUrlProblem,
} from "../domain/webhooks";
import { type AppContext, createRouter, errorResponses } from "../http";
import { afterReplay, sendWebhook } from "../webhooks/sender";
import { tenantOr404 } from "./admin-tenants";

export const webhooks = createRouter();

const EndpointSchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    key_id: z.string().nullable(),
    url: z.string(),
    events: z.enum(["terminal", "all"]),
    status: z.enum(["active", "disabled"]),
    created_at: z.string(),
  })
  .openapi("WebhookEndpoint");

const EndpointCreate = z
  .strictObject({
    url: z.string().max(2048),
    events: z
      .enum(["terminal", "all"])
      .default("terminal")
      .openapi({ description: "terminal events only, or every change" }),
    key_id: z.string().optional().openapi({ description: "only tasks created with this key" }),
    secret: z
      .string()
      .regex(
        /^whsec_[A-Za-z0-9+/=]{24,}$/,
        "must be a Standard Webhooks secret: whsec_ + base64 of 18+ bytes",
      )
      .optional()
      .openapi({ description: "omit to have one generated" }),
  })
  .openapi("WebhookEndpointCreate");

const endpointJson = (row: EndpointRow) => ({
  id: row.id,
  tenant_id: row.tenant_id,
  key_id: row.key_id,
  url: row.url,
  events: row.events,
  status: row.status,
  created_at: new Date(row.created_at).toISOString(),
});

async function registerEndpoint(c: AppContext, tenantId: string, input: z.infer<typeof EndpointCreate>) {
  const problem = webhookUrlProblem(input.url, c.env.ENVIRONMENT === "development");
  if (problem) throw new ApiError(400, "invalid_request", `url: ${problem}`, { field: "url" });
  if (input.key_id && !(await getKey(c.env.DB, tenantId, input.key_id))) {
    throw new ApiError(400, "invalid_request", "key_id: no such key for this tenant", { field: "key_id" });
  }
  const row = await createEndpoint(c.env.DB, {
    tenantId,
    keyId: input.key_id ?? null,
    url: input.url,
    secret: input.secret,
    events: input.events,
  });
  // The secret is shown once, like a key.
  return c.json({ ...endpointJson(row), secret: row.secret }, 201);
}

const created = {
  201: {
    description: "the endpoint, with its signing secret (shown once)",
    content: { "application/json": { schema: EndpointSchema.extend({ secret: z.string() }) } },
  },
};
const listed = {
  200: {
    description: "endpoints",
    content: { "application/json": { schema: z.object({ data: z.array(EndpointSchema) }) } },
  },
};
const TenantParams = z.object({
  tenant_id: z.string().openapi({ param: { name: "tenant_id", in: "path" } }),
});
const body = { required: true, content: { "application/json": { schema: EndpointCreate } } };
const CAP_DESCRIPTION = `A tenant has at most ${MAX_WEBHOOK_ENDPOINTS_PER_TENANT} active endpoints (disabled ones do not count): one more is a 409 \`webhook_endpoint_limit\`. Disabling an endpoint fails its pending deliveries (no more retries). A message body is at most ${MAX_WEBHOOK_PAYLOAD_BYTES / 1024} KiB: a larger task view is sent with \`"truncated": true\` and only its scalar fields (fetch GET /v1/tasks/{id}).`;
const admin = { tags: ["Admin: webhooks"], security: [{ adminToken: [] }] };
const tenantApi = { tags: ["Webhooks"], security: [{ subKey: [] }] };

webhooks.openapi(
  createRoute({
    method: "post",
    path: "/admin/tenants/{tenant_id}/webhooks",
    ...admin,
    summary: "register a webhook endpoint for a tenant",
    description: CAP_DESCRIPTION,
    request: { params: TenantParams, body },
    responses: { ...created, ...errorResponses(400, 401, 404, 409) },
  }),
  async (c) => {
    const { tenant_id } = c.req.valid("param");
    await tenantOr404(c.env.DB, tenant_id);
    return (await registerEndpoint(c, tenant_id, c.req.valid("json"))) as never;
  },
);

webhooks.openapi(
  createRoute({
    method: "get",
    path: "/admin/tenants/{tenant_id}/webhooks",
    ...admin,
    summary: "a tenant's webhook endpoints",
    request: { params: TenantParams },
    responses: { ...listed, ...errorResponses(401, 404) },
  }),
  async (c) => {
    const { tenant_id } = c.req.valid("param");
    await tenantOr404(c.env.DB, tenant_id);
    return c.json({ data: (await listEndpoints(c.env.DB, tenant_id)).map(endpointJson) }, 200);
  },
);

webhooks.openapi(
  createRoute({
    method: "delete",
    path: "/admin/tenants/{tenant_id}/webhooks/{webhook_id}",
    ...admin,
    summary: "disable a webhook endpoint",
    request: {
      params: TenantParams.extend({
        webhook_id: z.string().openapi({ param: { name: "webhook_id", in: "path" } }),
      }),
    },
    responses: { 204: { description: "disabled" }, ...errorResponses(401, 404) },
  }),
  async (c) => {
    const { tenant_id, webhook_id } = c.req.valid("param");
    if (!(await deleteEndpoint(c.env.DB, tenant_id, webhook_id))) {
      throw new ApiError(404, "not_found", `webhook ${webhook_id} not found`, { field: "webhook_id" });
    }
    return c.body(null, 204);
  },
);

webhooks.openapi(
  createRoute({
    method: "post",
    path: "/v1/webhooks",
    ...tenantApi,
    summary: "register a webhook endpoint (sub-key)",
    description: CAP_DESCRIPTION,
    request: { body },
    responses: { ...created, ...errorResponses(400, 401, 403, 409) },
  }),
  async (c) => (await registerEndpoint(c, c.get("principal").tenant.id, c.req.valid("json"))) as never,
);

webhooks.openapi(
  createRoute({
    method: "get",
    path: "/v1/webhooks",
    ...tenantApi,
    summary: "your webhook endpoints",
    responses: { ...listed, ...errorResponses(401, 403) },
  }),
  async (c) =>
    c.json({ data: (await listEndpoints(c.env.DB, c.get("principal").tenant.id)).map(endpointJson) }, 200),
);

webhooks.openapi(
  createRoute({
    method: "delete",
    path: "/v1/webhooks/{webhook_id}",
    ...tenantApi,
    summary: "disable one of your webhook endpoints",
    request: {
      params: z.object({ webhook_id: z.string().openapi({ param: { name: "webhook_id", in: "path" } }) }),
    },
    responses: { 204: { description: "disabled" }, ...errorResponses(401, 403, 404) },
  }),
  async (c) => {
    const { webhook_id } = c.req.valid("param");
    if (!(await deleteEndpoint(c.env.DB, c.get("principal").tenant.id, webhook_id))) {
      throw new ApiError(404, "not_found", `webhook ${webhook_id} not found`, { field: "webhook_id" });
    }
    return c.body(null, 204);
  },
);

const AttemptSchema = z.object({
  attempted_at: z.string(),
  status: z.number().int().nullable(),
  error: z.string().nullable(),
  duration_ms: z.number().int(),
  replay: z.boolean(),
});
const DeliverySchema = z
  .object({
    id: z.string(),
    endpoint_id: z.string(),
    tenant_id: z.string(),
    task_id: z.string(),
    event_type: z.string(),
    status: z.enum(["pending", "delivered", "failed"]),
    attempts: z.number().int(),
    next_attempt_at: z.string().nullable(),
    last_status: z.number().int().nullable(),
    last_error: z.string().nullable(),
    created_at: z.string(),
    delivered_at: z.string().nullable(),
    attempt_log: z.array(AttemptSchema),
  })
  .openapi("WebhookDelivery");

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

async function deliveriesJson(db: D1Database, rows: DeliveryRow[]) {
  const attempts = await attemptsOf(
    db,
    rows.map((r) => r.id),
  );
  return rows.map((row) => ({
    id: row.id,
    endpoint_id: row.endpoint_id,
    tenant_id: row.tenant_id,
    task_id: row.task_id,
    event_type: row.event_type,
    status: row.status,
    attempts: row.attempts,
    next_attempt_at: iso(row.next_attempt_at),
    last_status: row.last_status,
    last_error: row.last_error,
    created_at: iso(row.created_at)!,
    delivered_at: iso(row.delivered_at),
    attempt_log: attempts
      .filter((a) => a.delivery_id === row.id)
      .map((a) => ({
        attempted_at: iso(a.attempted_at)!,
        status: a.status,
        error: a.error,
        duration_ms: a.duration_ms,
        replay: a.replay === 1,
      })),
  }));
}

webhooks.openapi(
  createRoute({
    method: "get",
    path: "/admin/webhook-deliveries",
    ...admin,
    summary: "webhook deliveries with every attempt, newest first",
    request: {
      query: z.object({
        tenant_id: z.string().optional(),
        task_id: z.string().optional(),
        status: z.enum(["pending", "delivered", "failed"]).optional(),
        limit: z.coerce.number().int().min(1).max(200).default(50),
        cursor: z.string().optional(),
      }),
    },
    responses: {
      200: {
        description: "deliveries",
        content: {
          "application/json": {
            schema: z.object({ data: z.array(DeliverySchema), next_cursor: z.string().nullable() }),
          },
        },
      },
      ...errorResponses(400, 401),
    },
  }),
  async (c) => {
    const query = c.req.valid("query");
    const rows = await listDeliveries(
      c.env.DB,
      { tenantId: query.tenant_id, taskId: query.task_id, status: query.status },
      query.limit + 1,
      query.cursor,
    );
    const page = rows.slice(0, query.limit);
    return c.json(
      {
        data: await deliveriesJson(c.env.DB, page),
        next_cursor: rows.length > query.limit ? page.at(-1)!.id : null,
      },
      200,
    );
  },
);

webhooks.openapi(
  createRoute({
    method: "post",
    path: "/admin/webhook-deliveries/{delivery_id}/replay",
    ...admin,
    summary: "send a delivery again now (same webhook-id, new timestamp and signature)",
    request: {
      params: z.object({ delivery_id: z.string().openapi({ param: { name: "delivery_id", in: "path" } }) }),
    },
    responses: {
      200: {
        description: "the delivery after the attempt",
        content: { "application/json": { schema: DeliverySchema } },
      },
      ...errorResponses(401, 404),
    },
  }),
  async (c) => {
    const { delivery_id } = c.req.valid("param");
    const delivery = await getDelivery(c.env.DB, delivery_id);
    if (!delivery)
      throw new ApiError(404, "not_found", `delivery ${delivery_id} not found`, { field: "delivery_id" });
    const result = await sendWebhook(delivery, { id: delivery.id, payload: delivery.payload });
    await recordAttempt(c.env.DB, delivery.id, result, afterReplay(result, delivery), true);
    const [json] = await deliveriesJson(c.env.DB, [(await getDelivery(c.env.DB, delivery_id))!]);
    return c.json(json!, 200);
  },
);
