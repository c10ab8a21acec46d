import { createRoute, z } from "@hono/zod-openapi";
import { ApiError, notFoundTask } from "../../domain/errors";
import { TASK_ID_PATTERN } from "../../domain/ids";
import { configFrom } from "../../env";
import { type AppContext, createRouter, errorResponses } from "../../http";
import { streamCheckMs, streamStillAuthorized } from "../../middleware/auth";
import { guardStream } from "../../middleware/stream-guard";
import { StreamTokenRequest, StreamTokenResponse } from "../../schemas/stream-token";
import { mintStreamToken } from "../../services/stream-tokens";

export const streams = createRouter();

/**
 * CORS for browser streams: only the tenant's configured origins. A request from any
 * other origin is refused outright rather than silently served without the header.
 */
function applyCors(c: AppContext): void {
  const origin = c.req.header("origin");
  if (!origin) return;
  if (!c.get("scope").corsOrigins.includes(origin)) {
    throw new ApiError("origin_not_allowed", `origin ${origin} is not allowed for this tenant's streams`);
  }
  c.header("Access-Control-Allow-Origin", origin);
  c.header("Vary", "Origin");
  c.header("Access-Control-Allow-Headers", "Last-Event-ID, Authorization");
  c.header("Access-Control-Allow-Methods", "GET, OPTIONS");
  c.header("Access-Control-Max-Age", "600");
}

/**
 * The object's stream with the CORS headers of this request, watched so that it ends once
 * its key or tenant no longer may stream (src/middleware/stream-guard.ts).
 */
function withHeaders(c: AppContext, response: Response): Response {
  const keyCacheMs = configFrom(c.env).keyCacheMs;
  const scope = c.get("scope");
  const body =
    response.status === 200 && response.body
      ? guardStream(
          response.body,
          () => streamStillAuthorized(c.env.DB, scope, keyCacheMs),
          streamCheckMs(keyCacheMs),
        )
      : response.body;
  const merged = new Response(body, response);
  c.res.headers.forEach((value, name) => {
    if (name.startsWith("access-control-") || name === "vary") merged.headers.set(name, value);
  });
  return merged;
}

const SseResponse = {
  200: {
    description:
      "text/event-stream: `id: <seq>`, `event: status`, `data: <task object as GET returns it>`; `: ping` every 15 s; resumes from Last-Event-ID",
    content: { "text/event-stream": { schema: z.string() } },
  },
  204: {
    description:
      "a reconnect (Last-Event-ID) to a finished task, or a token whose tasks all finished, with nothing new: EventSource stops",
  },
};
const TokenQuery = z.object({
  token: z
    .string()
    .optional()
    .openapi({ description: "a stream token from POST /v1/stream-tokens (browsers)" }),
  last_event_id: z
    .string()
    .optional()
    .openapi({ description: "resume after this event id (or the Last-Event-ID header)" }),
});

streams.openapi(
  createRoute({
    method: "get",
    path: "/v1/midjourney/{task_id}/events",
    tags: ["Streams"],
    summary: "live status of one task over Server-Sent Events",
    security: [{ subKey: [] }, { streamToken: [] }],
    request: {
      params: z.object({ task_id: z.string().openapi({ param: { name: "task_id", in: "path" } }) }),
      query: TokenQuery,
    },
    responses: { ...SseResponse, ...errorResponses(401, 403, 404) },
  }),
  async (c) => {
    const task_id = c.req.param("task_id") ?? "";
    c.set("taskId", task_id);
    applyCors(c);
    const scope = c.get("scope");
    if (!TASK_ID_PATTERN.test(task_id)) throw notFoundTask(task_id);
    if (scope.taskIds && !scope.taskIds.includes(task_id)) {
      throw new ApiError("stream_token_scope", "this stream token does not cover that task", {
        field: "task_id",
      });
    }
    const forwarded = new Request(c.req.raw.url, { headers: c.req.raw.headers });
    forwarded.headers.set("x-gateway-tenant", scope.tenantId);
    const response = await c.env.TASKS.get(c.env.TASKS.idFromName(task_id)).fetch(forwarded);
    if (response.status === 404) throw notFoundTask(task_id);
    return withHeaders(c, response) as never;
  },
);

streams.openapi(
  createRoute({
    method: "get",
    path: "/v1/events",
    tags: ["Streams"],
    summary: "live changes of all the tenant's tasks (or the token's tasks) over Server-Sent Events",
    security: [{ subKey: [] }, { streamToken: [] }],
    request: { query: TokenQuery },
    responses: { ...SseResponse, ...errorResponses(401, 403) },
  }),
  async (c) => {
    applyCors(c);
    const scope = c.get("scope");
    const url = new URL(c.req.raw.url);
    if (scope.taskIds) url.searchParams.set("tasks", scope.taskIds.join(","));
    else url.searchParams.delete("tasks");
    const forwarded = new Request(url, { headers: c.req.raw.headers });
    const response = await c.env.TENANT_HUB.get(c.env.TENANT_HUB.idFromName(scope.tenantId)).fetch(forwarded);
    return withHeaders(c, response) as never;
  },
);

for (const path of ["/v1/events", "/v1/midjourney/:task_id/events"]) {
  streams.options(path, (c) => {
    applyCors(c);
    return c.body(null, 204);
  });
}

streams.openapi(
  createRoute({
    method: "post",
    path: "/v1/stream-tokens",
    tags: ["Streams"],
    summary:
      "mint a short-lived token a browser passes as ?token= to the stream endpoints (server side, with the sub-key)",
    security: [{ subKey: [] }],
    request: { body: { required: true, content: { "application/json": { schema: StreamTokenRequest } } } },
    responses: {
      201: { description: "the token", content: { "application/json": { schema: StreamTokenResponse } } },
      ...errorResponses(400, 401, 403),
    },
  }),
  async (c) => {
    const principal = c.get("principal");
    if (!principal) throw new ApiError("missing_api_key", "stream tokens are minted with the sub-key");
    return c.json(
      await mintStreamToken(c.env, principal.tenant.id, c.req.valid("json"), principal.key.id),
      201,
    );
  },
);
