import { createRoute, z } from "@hono/zod-openapi";
import { notFoundTask } from "../../domain/errors";
import { TASK_ID_PATTERN } from "../../domain/ids";
import type { TaskViewShape } from "../../domain/task-view";
import { configFrom } from "../../env";
import { type AppContext, createRouter, errorResponses } from "../../http";
import { TaskObjectSchema, UnifiedTaskSchema } from "../../schemas/task";
import { queryTask } from "../../services/task-queries";
import { AREAS, json } from "../helpers";

const TaskIdParam = z.object({
  task_id: z
    .string()
    .openapi({ param: { name: "task_id", in: "path" }, example: "task_01KV52C0TEJSYZMCG0NCS4YWKK" }),
});

/** The task's own Durable Object answers (or an isolate's kept final view), for the caller's tenant only (else 404). */
async function taskViewFor(c: AppContext, taskId: string, shape: TaskViewShape) {
  c.set("taskId", taskId);
  if (!TASK_ID_PATTERN.test(taskId)) throw notFoundTask(taskId);
  const view = await queryTask(c.env, {
    tenantId: c.get("principal").tenant.id,
    taskId,
    shape,
    keepMs: configFrom(c.env).keyCacheMs,
  });
  if (!view) throw notFoundTask(taskId);
  return view;
}

export const taskRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/v1/midjourney/{task_id}",
    ...AREAS.tasks,
    summary: "the task object (bare, like the upstream), answered by the task's Durable Object",
    request: { params: TaskIdParam },
    responses: { 200: json(TaskObjectSchema, "the task"), ...errorResponses(401, 403, 404) },
  }),
  async (c) =>
    c.json(
      (await taskViewFor(c, c.req.valid("param").task_id, "task")) as z.infer<typeof TaskObjectSchema>,
      200,
    ),
);

export const unifiedTaskRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/v1/tasks/{task_id}",
    ...AREAS.tasks,
    summary: "the unified task query",
    request: { params: TaskIdParam },
    responses: { 200: json(UnifiedTaskSchema, "the task"), ...errorResponses(401, 403, 404) },
  }),
  async (c) =>
    c.json(
      (await taskViewFor(c, c.req.valid("param").task_id, "unified")) as z.infer<typeof UnifiedTaskSchema>,
      200,
    ),
);
