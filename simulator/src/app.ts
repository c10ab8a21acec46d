/**
 * HTTP layer of the simulator (stateless): auth, JSON parsing, acting out
 * faults (delays happen here, never inside the Durable Object), images, and
 * the /_sim control API. All state lives in the one SimulatorStore object.
 */

import { type Context, Hono } from "hono";
import { z } from "zod";
import { isImageRef } from "./actions";
import { cdnResponse, requestedVideoBytes } from "./cdn";
import type { Env } from "./env";
import { apiError, badRequest, taskNotFound, unauthorized } from "./errors";
import {
  actOutFault,
  type Fault,
  faultInputSchema,
  type RequestFacts,
  resultResponse,
  SimulatedConnectionFailure,
} from "./faults";
import { MAX_VIDEO_BYTES, MIN_VIDEO_BYTES } from "./mp4";
import type { ApiResult, JsonObject } from "./types";

type AppContext = Context<{ Bindings: Env }>;

export const app = new Hono<{ Bindings: Env }>();

function storeOf(env: Env) {
  return env.STORE.get(env.STORE.idFromName("sim"));
}

// ---------------------------------------------------------------------------
// Auth

const KEY_PREFIX = "sk-sim-";

type AuthResult = { ok: true; key: string } | { ok: false; result: ApiResult };

/** Any "sk-sim-..." key is valid, so parallel tests can each use their own. */
function authenticate(header: string | undefined, env: Env): AuthResult {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  if (!match?.[1]) return { ok: false, result: unauthorized("missing Authorization: Bearer <key>") };
  const key = match[1];
  const extraKeys = (env.SIM_API_KEYS ?? "")
    .split(",")
    .map((k) => k.trim())
    .filter(Boolean);
  if ((key.startsWith(KEY_PREFIX) && key.length > KEY_PREFIX.length) || extraKeys.includes(key)) {
    return { ok: true, key };
  }
  return { ok: false, result: unauthorized("invalid API key") };
}

// ---------------------------------------------------------------------------
// Upstream API

/** An empty body counts as {}, so the answer names the missing field. */
function parseJsonObject(text: string): JsonObject | null {
  if (text.trim() === "") return {};
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value)
      ? (value as JsonObject)
      : null;
  } catch {
    return null;
  }
}

const stringOrNull = (value: unknown) => (typeof value === "string" ? value : null);

function respond(fault: Fault | null, handle: () => Promise<Response>): Promise<Response> {
  return fault ? actOutFault(fault, handle) : handle();
}

async function submitRoute(c: AppContext, action: string): Promise<Response> {
  const auth = authenticate(c.req.header("authorization"), c.env);
  if (!auth.ok) return resultResponse(auth.result);
  const body = withSmallImages(parseJsonObject(await c.req.text()));
  const store = storeOf(c.env);
  const facts: RequestFacts = {
    on: "submit",
    key: auth.key,
    taskId: stringOrNull(body?.task_id),
    action,
    prompt: stringOrNull(body?.prompt),
  };
  const handle = async () => resultResponse(await store.submit(auth.key, action, body));
  return respond(await store.intake(facts), handle);
}

/**
 * The store is a Durable Object, and an RPC argument is limited to 32 MiB: image data URIs
 * (up to four of 12 MiB) are checked here and passed on as short stand-ins, as a real
 * upstream would keep uploads out of its task records.
 */
function withSmallImages<T extends Record<string, unknown> | null>(body: T): T {
  if (!body) return body;
  const shrink = (value: unknown) => {
    if (typeof value !== "string" || !value.startsWith("data:") || value.length <= 65_536) return value;
    if (!isImageRef(value)) return "data:too-large";
    return `${value.slice(0, value.indexOf(",") + 1)}${value.slice(value.indexOf(",") + 1, value.indexOf(",") + 65)}`;
  };
  const out: Record<string, unknown> = { ...body };
  if (Array.isArray(out.image_urls)) out.image_urls = out.image_urls.map(shrink);
  for (const field of ["mask_url", "end_url"]) if (field in out) out[field] = shrink(out[field]);
  return out as T;
}

async function queryRoute(c: AppContext, shape: "task" | "unified"): Promise<Response> {
  const auth = authenticate(c.req.header("authorization"), c.env);
  if (!auth.ok) return resultResponse(auth.result);
  const taskId = c.req.param("taskId") ?? "";
  const origin = new URL(c.req.url).origin;
  const store = storeOf(c.env);
  const facts: RequestFacts = { on: "query", key: auth.key, taskId, action: null, prompt: null };
  const handle = async () => resultResponse(await store.query(auth.key, taskId, origin, shape));
  return respond(await store.intake(facts), handle);
}

app.post("/v1/midjourney/generations", (c) => submitRoute(c, "imagine"));
app.post("/v1/midjourney/generations/:action", (c) => submitRoute(c, c.req.param("action")));
app.get("/v1/midjourney/:taskId", (c) => queryRoute(c, "task"));
app.get("/v1/tasks/:taskId", (c) => queryRoute(c, "unified"));

// ---------------------------------------------------------------------------
// Images (no auth, like a public CDN)

app.get("/cdn/:taskId/:file", async (c) => {
  const override = requestedVideoBytes(c.req.query("bytes"));
  if (Number.isNaN(override)) {
    return resultResponse(
      badRequest(`bytes must be an integer from ${MIN_VIDEO_BYTES} to ${MAX_VIDEO_BYTES}`),
    );
  }
  const source = await storeOf(c.env).imageSource(c.req.param("taskId"));
  const response = source
    ? await cdnResponse(c.req.raw, source, c.req.param("file"), override ?? source.videoBytes)
    : null;
  return response ?? c.text("not found", 404);
});

// ---------------------------------------------------------------------------
// Control API: DEV/TEST ONLY, deliberately unauthenticated. Everything here
// can be scoped to one upstream key so parallel tests do not interfere.

const control = new Hono<{ Bindings: Env }>();

async function readJson(c: AppContext): Promise<unknown> {
  const text = await c.req.text();
  return parseJsonObject(text) ?? undefined;
}

function invalid(error: z.ZodError): Response {
  const issue = error.issues[0];
  const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
  return resultResponse(badRequest(`${where}${issue?.message ?? "invalid body"}`));
}

const keyQuery = (c: AppContext) => c.req.query("key") || undefined;

control.post("/faults", async (c) => {
  const parsed = faultInputSchema.safeParse(await readJson(c));
  if (!parsed.success) return invalid(parsed.error);
  return c.json(await storeOf(c.env).addFault(parsed.data), 201);
});

control.get("/faults", async (c) => c.json(await storeOf(c.env).listFaults(keyQuery(c))));

control.delete("/faults", async (c) => c.json({ cleared: await storeOf(c.env).clearFaults(keyQuery(c)) }));

const configSchema = z
  .strictObject({
    /** null removes the override (back to SIM_TIME_SCALE). */
    time_scale: z.number().min(0).nullable().optional(),
    /** Size of each video file served; null removes the override (back to 256 KiB). */
    video_bytes: z.number().int().min(MIN_VIDEO_BYTES).max(MAX_VIDEO_BYTES).nullable().optional(),
    key: z.string().min(1).optional(),
  })
  .refine((body) => body.time_scale !== undefined || body.video_bytes !== undefined, {
    message: "send time_scale and/or video_bytes",
  });

control.get("/config", async (c) => c.json(await storeOf(c.env).config(keyQuery(c))));

control.post("/config", async (c) => {
  const parsed = configSchema.safeParse(await readJson(c));
  if (!parsed.success) return invalid(parsed.error);
  const { key, ...changes } = parsed.data;
  return c.json(await storeOf(c.env).configure(changes, key));
});

const clockSchema = z.strictObject({
  advance_ms: z.number().int().min(0),
  key: z.string().min(1).optional(),
});

control.post("/clock", async (c) => {
  const parsed = clockSchema.safeParse(await readJson(c));
  if (!parsed.success) return invalid(parsed.error);
  return c.json(await storeOf(c.env).advanceClock(parsed.data.advance_ms, parsed.data.key));
});

control.get("/tasks", async (c) => {
  const key = keyQuery(c);
  if (!key) return resultResponse(badRequest("key query parameter is required"));
  return c.json(await storeOf(c.env).listTasks(key));
});

// Forgetting files: the CDN answers 404 for them, as upstream links expire; the tasks stay queryable.
control.post("/tasks/:taskId/forget-files", async (c) => {
  const taskId = c.req.param("taskId");
  if (!(await storeOf(c.env).forgetFiles(taskId))) return resultResponse(taskNotFound(taskId));
  return c.json({ task_id: taskId, files: "forgotten" });
});

// A real, playable video for a key's video tasks (browser tests seek in it); DELETE goes back to the synthetic one.
const MAX_VIDEO_FILE_BYTES = 1024 * 1024;
control.put("/video-file", async (c) => {
  const key = keyQuery(c);
  if (!key) return resultResponse(badRequest("key query parameter is required"));
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (!bytes.length || bytes.length > MAX_VIDEO_FILE_BYTES) {
    return resultResponse(badRequest(`the body must be 1 to ${MAX_VIDEO_FILE_BYTES} bytes`));
  }
  const contentType = c.req.header("content-type") ?? "video/mp4";
  await storeOf(c.env).setVideoFile(key, { contentType, bytes });
  return c.json({ key, content_type: contentType, bytes: bytes.length });
});
control.delete("/video-file", async (c) => {
  const key = keyQuery(c);
  if (!key) return resultResponse(badRequest("key query parameter is required"));
  await storeOf(c.env).setVideoFile(key, null);
  return c.json({ key, video_file: null });
});

control.post("/forget-files", async (c) => {
  const key = keyQuery(c);
  if (!key) return resultResponse(badRequest("key query parameter is required"));
  return c.json({ key, forgotten: await storeOf(c.env).forgetKeyFiles(key) });
});

// Webhook sink: POST /_sim/webhooks/{sink} records the request (headers and raw body);
// GET lists what arrived; POST /_sim/webhook-sinks/{sink} makes the next N answers fail.
control.post("/webhooks/:sink", async (c) => {
  const headers: Record<string, string> = {};
  c.req.raw.headers.forEach((value, name) => {
    headers[name] = value;
  });
  const status = await storeOf(c.env).receiveWebhook(c.req.param("sink"), headers, await c.req.text());
  return c.json({ received: status < 300 }, status as 200);
});

control.get("/webhooks/:sink", async (c) =>
  c.json(await storeOf(c.env).webhooksReceived(c.req.param("sink"))),
);

const sinkSchema = z.strictObject({
  fail_next: z.number().int().min(0),
  status: z.number().int().min(200).max(599).default(500),
});

control.post("/webhook-sinks/:sink", async (c) => {
  const parsed = sinkSchema.safeParse(await readJson(c));
  if (!parsed.success) return invalid(parsed.error);
  await storeOf(c.env).configureWebhookSink(c.req.param("sink"), parsed.data.fail_next, parsed.data.status);
  return c.json({ sink: c.req.param("sink"), ...parsed.data });
});

control.get("/stats", async (c) => c.json(await storeOf(c.env).stats(keyQuery(c))));

control.delete("/stats", async (c) => c.json(await storeOf(c.env).resetStats(keyQuery(c))));

control.post("/reset", async (c) => {
  await storeOf(c.env).reset(keyQuery(c));
  return c.json({ reset: keyQuery(c) ?? "all" });
});

app.route("/_sim", control);

// ---------------------------------------------------------------------------

app.get("/", (c) =>
  c.text(
    "mj-simulator: a dev/test-only stand-in for the upstream Midjourney API. See simulator/README.md.\n",
  ),
);

app.notFound((c) =>
  resultResponse(
    apiError(
      404,
      404,
      `no route for ${c.req.method} ${new URL(c.req.url).pathname}`,
      "invalid_request_error",
    ),
  ),
);

app.onError((error) => {
  if (error instanceof SimulatedConnectionFailure) throw error;
  return resultResponse(apiError(500, 500, `simulator error: ${error.message}`, "api_error"));
});
