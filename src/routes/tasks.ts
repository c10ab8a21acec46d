import { createRoute, z } from "@hono/zod-openapi";
import { notFoundTask } from "../domain/errors";
import { TASK_ID_PATTERN } from "../domain/ids";
import { type AppContext, createRouter, errorResponses } from "../http";

export const tasks = createRouter();

const TaskIdParam = z.object({
  task_id: z
    .string()
    .openapi({ param: { name: "task_id", in: "path" }, example: "task_01KV52C0TEJSYZMCG0NCS4YWKK" }),
});

export const TaskObjectSchema = z
  .object({
    id: z.string(),
    status: z.enum(["NOT_START", "SUBMITTED", "IN_PROGRESS", "MODAL", "SUCCESS", "FAILURE", "CANCEL"]),
    action: z.string(),
    progress: z.string().openapi({ example: "100%" }),
    prompt: z.string().nullable(),
    grid_image_url: z.string().optional(),
    image_urls: z.array(z.string()).optional(),
    video_url: z.string().optional(),
    video_urls: z.array(z.string()).optional(),
    buttons: z.array(z.object({ customId: z.string(), label: z.string() })).optional(),
    fail_reason: z.string().nullable(),
    cost: z.number().openapi({ description: "the tenant's price in USD" }),
    created: z.number().int(),
    completed: z.number().int().nullable(),
    metadata: z.record(z.string(), z.unknown()).optional(),
  })
  .passthrough()
  .openapi("Task");

const UnifiedTaskSchema = z
  .object({
    code: z.literal(200),
    data: z.object({
      id: z.string(),
      status: z.enum(["pending", "processing", "completed", "failed", "cancelled"]),
      progress: z.number().int(),
      result: z.object({ images: z.array(z.object({ url: z.array(z.string()) })) }).nullable(),
      error: z.object({ code: z.string(), message: z.string() }).nullable(),
    }),
  })
  .openapi("UnifiedTask");

export async function taskViewFor(c: AppContext, taskId: string, shape: "task" | "unified") {
  c.set("taskId", taskId);
  if (!TASK_ID_PATTERN.test(taskId)) throw notFoundTask(taskId);
  const view = await c.env.TASKS.get(c.env.TASKS.idFromName(taskId)).view(
    c.get("principal").tenant.id,
    shape,
  );
  if (!view) throw notFoundTask(taskId);
  return view;
}

tasks.openapi(
  createRoute({
    method: "get",
    path: "/v1/midjourney/{task_id}",
    tags: ["Tasks"],
    summary: "the task object (bare, like the upstream), answered by the task's Durable Object",
    security: [{ subKey: [] }],
    request: { params: TaskIdParam },
    responses: {
      200: { description: "the task", content: { "application/json": { schema: TaskObjectSchema } } },
      ...errorResponses(401, 403, 404),
    },
  }),
  async (c) =>
    c.json(
      (await taskViewFor(c, c.req.valid("param").task_id, "task")) as z.infer<typeof TaskObjectSchema>,
      200,
    ),
);

tasks.openapi(
  createRoute({
    method: "get",
    path: "/v1/tasks/{task_id}",
    tags: ["Tasks"],
    summary: "the unified task query",
    security: [{ subKey: [] }],
    request: { params: TaskIdParam },
    responses: {
      200: { description: "the task", content: { "application/json": { schema: UnifiedTaskSchema } } },
      ...errorResponses(401, 403, 404),
    },
  }),
  async (c) =>
    c.json(
      (await taskViewFor(c, c.req.valid("param").task_id, "unified")) as z.infer<typeof UnifiedTaskSchema>,
      200,
    ),
);
