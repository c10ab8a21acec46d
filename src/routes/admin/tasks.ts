import { createRoute, z } from "@hono/zod-openapi";
import { getTaskRow, listTasks, type TaskRow } from "../../db/tasks";
import { ACTIONS } from "../../domain/actions";
import { notFoundTask } from "../../domain/errors";
import { TASK_ID_PATTERN } from "../../domain/ids";
import { STATUSES } from "../../domain/task-machine";
import type { LiveTask } from "../../durable/tenant-hub";
import type { Env } from "../../env";
import { createRouter, errorResponses } from "../../http";
import { logEvent } from "../../log";
import { StreamTokenRequest, StreamTokenResponse } from "../../schemas/stream-token";
import { TaskObjectSchema } from "../../schemas/task";
import { mintStreamToken } from "../../services/stream-tokens";
import { tenantOr404 } from "../helpers";

/** Operators' view of tasks (the console's live task list) and stream tokens minted for a tenant. */
export const adminTasks = createRouter();

const admin = { tags: ["Admin: tasks and streams"], security: [{ adminToken: [] }] };
const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

const LiveTaskSchema = z
  .object({
    status: z.enum(STATUSES),
    progress: z
      .number()
      .int()
      .min(0)
      .max(100)
      .openapi({ description: "percent, as the task object's progress" }),
    updated_at: z.string().openapi({ description: "when the task object made this change" }),
  })
  .openapi("AdminTaskLive");

export const AdminTaskSchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    key_id: z.string(),
    action: z.string(),
    parent_task_id: z.string().nullable(),
    upstream_task_id: z.string().nullable(),
    status: z.enum(["open", "SUCCESS", "FAILURE", "CANCEL"]).openapi({
      description:
        "'open' until the task settles, then its terminal status; an open task's live status is in `live`",
    }),
    // A union, not .nullable(): the document keeps the null of a named schema only this way.
    live: z.union([LiveTaskSchema, z.null()]).openapi({
      description:
        "an open task's latest status and progress as its task object published them (the tenant's stream carries every later change); null once the task settled, or while no change of it has been heard",
    }),
    cost_micros: z.number().int(),
    fail_reason: z.string().nullable(),
    created_at: z.string(),
    finished_at: z.string().nullable(),
  })
  .openapi("AdminTask");

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** A task's billing row, with its live state while it is open. */
export function adminTaskJson(row: TaskRow, live: LiveTask | null): z.infer<typeof AdminTaskSchema> {
  const open = row.settled_at === null;
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    key_id: row.key_id,
    action: row.action,
    parent_task_id: row.parent_task_id,
    upstream_task_id: row.upstream_task_id,
    status: open ? "open" : (row.status as "SUCCESS" | "FAILURE" | "CANCEL"),
    live:
      open && live
        ? { status: live.status, progress: live.progress, updated_at: iso(live.updatedAt)! }
        : null,
    cost_micros: row.cost,
    fail_reason: row.fail_reason,
    created_at: iso(row.created_at)!,
    finished_at: iso(row.finished_at),
  };
}

adminTasks.openapi(
  createRoute({
    method: "get",
    path: "/admin/tasks",
    ...admin,
    summary: "tasks, newest first, filtered by tenant, key, status and action, with cursor pagination",
    request: {
      query: z.object({
        tenant_id: z.string().optional(),
        key_id: z.string().optional(),
        status: z.enum(["open", "SUCCESS", "FAILURE", "CANCEL"]).optional(),
        action: z.enum(ACTIONS).optional(),
        limit: z.coerce.number().int().min(1).max(200).default(50),
        cursor: z
          .string()
          .regex(TASK_ID_PATTERN, "must be a next_cursor from an earlier page")
          .optional()
          .openapi({ description: "next_cursor of the previous page" }),
      }),
    },
    responses: {
      200: json(z.object({ data: z.array(AdminTaskSchema), next_cursor: z.string().nullable() }), "tasks"),
      ...errorResponses(400, 401),
    },
  }),
  async (c) => {
    const query = c.req.valid("query");
    const page = await listTasks(
      c.env.DB,
      { tenantId: query.tenant_id, keyId: query.key_id, status: query.status, action: query.action },
      query.cursor ?? null,
      query.limit,
    );
    const live = await liveStateOfOpenTasks(c.env, page.rows);
    return c.json(
      {
        data: page.rows.map((row) => adminTaskJson(row, live.get(row.id) ?? null)),
        next_cursor: page.nextCursor,
      },
      200,
    );
  },
);

/**
 * The live state of a page's open tasks: D1 only learns a task's status when it settles, and
 * each tenant's hub already holds its open tasks' latest change, so one hub call per tenant on
 * the page (in parallel) replaces a call per task. A hub that cannot answer leaves its tasks
 * without live state rather than failing the list.
 */
async function liveStateOfOpenTasks(env: Env, rows: TaskRow[]): Promise<Map<string, LiveTask>> {
  const openByTenant = new Map<string, string[]>();
  for (const row of rows) {
    if (row.settled_at !== null) continue;
    const ids = openByTenant.get(row.tenant_id) ?? [];
    ids.push(row.id);
    openByTenant.set(row.tenant_id, ids);
  }
  const answers = await Promise.all(
    [...openByTenant].map(async ([tenantId, taskIds]) => {
      try {
        const hub = env.TENANT_HUB.get(env.TENANT_HUB.idFromName(tenantId));
        return Object.entries(await hub.liveTasks(taskIds)) as Array<[string, LiveTask]>;
      } catch (error) {
        logEvent("tenant_hub_live_tasks_failed", { tenant_id: tenantId, error: String(error) });
        return [];
      }
    }),
  );
  return new Map(answers.flat());
}

adminTasks.openapi(
  createRoute({
    method: "get",
    path: "/admin/tasks/{task_id}",
    ...admin,
    summary: "one task: its billing row and, while it is kept, the live task object",
    request: {
      params: z.object({
        task_id: z
          .string()
          .openapi({ param: { name: "task_id", in: "path" }, example: "task_01KV52C0TEJSYZMCG0NCS4YWKK" }),
      }),
    },
    responses: {
      200: json(
        AdminTaskSchema.extend({
          task: z.union([TaskObjectSchema, z.null()]).openapi({
            description: "the task object as the tenant sees it; null once the retention period is over",
          }),
        }).openapi("AdminTaskDetail"),
        "the task",
      ),
      ...errorResponses(401, 404),
    },
  }),
  async (c) => {
    const { task_id } = c.req.valid("param");
    c.set("taskId", task_id);
    const row = TASK_ID_PATTERN.test(task_id) ? await getTaskRow(c.env.DB, task_id) : null;
    if (!row) throw notFoundTask(task_id);
    const [view, live] = await Promise.all([
      c.env.TASKS.get(c.env.TASKS.idFromName(task_id)).view(row.tenant_id, "task"),
      liveStateOfOpenTasks(c.env, [row]),
    ]);
    return c.json(
      {
        ...adminTaskJson(row, live.get(row.id) ?? null),
        task: (view ?? null) as z.infer<typeof TaskObjectSchema> | null,
      },
      200,
    );
  },
);

adminTasks.openapi(
  createRoute({
    method: "post",
    path: "/admin/tenants/{tenant_id}/stream-tokens",
    ...admin,
    summary:
      "mint a stream token for a tenant (what POST /v1/stream-tokens gives its sub-key), for dashboards such as the console",
    request: {
      params: z.object({ tenant_id: z.string().openapi({ param: { name: "tenant_id", in: "path" } }) }),
      body: { required: true, content: { "application/json": { schema: StreamTokenRequest } } },
    },
    responses: {
      201: json(
        StreamTokenResponse,
        "the token: pass it as ?token= to GET /v1/events or GET /v1/midjourney/{task_id}/events",
      ),
      ...errorResponses(400, 401, 404),
    },
  }),
  async (c) => {
    const { tenant_id } = c.req.valid("param");
    await tenantOr404(c.env.DB, tenant_id);
    return c.json(await mintStreamToken(c.env, tenant_id, c.req.valid("json")), 201);
  },
);
