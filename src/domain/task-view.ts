import { microsToUsdNumber } from "./money";
import type { TaskState } from "./task-machine";

/** What the gateway knows about a task besides its machine state. */
export interface TaskMeta {
  taskId: string;
  tenantId: string;
  keyId: string;
  action: string;
  parentTaskId: string | null;
  /** The parent's id at the upstream, so customIds and messages can be translated back. */
  upstreamParentId: string | null;
  upstreamTaskId: string | null;
  /** The submit step's price (what the task cost when it was admitted). */
  costMicros: number;
  /** Prices of later steps ('modal.1', …); a step the machine refunded no longer counts. */
  stepCosts?: Record<string, number>;
  prompt: string | null;
  metadata: Record<string, unknown> | null;
  /**
   * Whether the tenant has webhook endpoints for this task: read by admission, set later by
   * the tenant hub (an endpoint registered while the task runs) or by settlement. While false
   * the task does no webhook work at all (no D1); absent (older records) counts as true.
   */
  webhooks?: boolean;
  /**
   * Whether the tenant hosts its results (asset_mode "hosted", as the key's cached tenant row
   * said at admission): an `upstream` tenant's SUCCESS costs no D1 read for its settings;
   * absent (older records) asks D1.
   */
  hosted?: boolean;
  /** While the task waits for a slot on its upstream: its place in that queue (1 = next). */
  queuePosition?: number | null;
}

/** Whether the task publishes its changes to webhooks (older records, without the flag, do). */
export const sendsWebhooks = (meta: TaskMeta): boolean => meta.webhooks !== false;

/** Fields we own; everything else the upstream reported passes through untouched. */
const OWNED_FIELDS = new Set([
  "id",
  "status",
  "progress",
  "cost",
  "fail_reason",
  "created",
  "completed",
  "metadata",
]);

/** Upstream action names are upper snake case: "high-variation" → "HIGH_VARIATION". */
export const upstreamActionName = (action: string) => action.toUpperCase().replace(/-/g, "_");

/** The two shapes a task is shown in: the upstream's bare task object, or its unified query. */
export type TaskViewShape = "task" | "unified";

/** The task object exactly as the upstream's GET /v1/midjourney/{id} shapes it, with our ids and our price. */
export function taskView(meta: TaskMeta, state: TaskState): Record<string, unknown> {
  const passthrough: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(state.result)) {
    if (!OWNED_FIELDS.has(field)) passthrough[field] = value;
  }
  const view: Record<string, unknown> = {
    id: meta.taskId,
    status: state.status,
    action: upstreamActionName(meta.action),
    progress: `${state.progress}%`,
    prompt: meta.prompt,
    ...passthrough,
    fail_reason: state.failReason,
    cost: microsToUsdNumber(chargedMicros(meta, state)),
    created: Math.floor(state.createdAt / 1000),
    completed: state.finishedAt === null ? null : Math.floor(state.finishedAt / 1000),
  };
  // customIds may carry the upstream's task id; URLs must stay exactly as the upstream serves them.
  if (Array.isArray(view.buttons)) view.buttons = translateIds(view.buttons, meta);
  if (meta.metadata) view.metadata = meta.metadata;
  if (meta.queuePosition) view.queue_position = meta.queuePosition;
  return view;
}

/** What the tenant pays for the task now: the submit price plus every later step not given back. */
export function chargedMicros(meta: TaskMeta, state: TaskState): number {
  let total = meta.costMicros;
  for (const charge of state.charges ?? []) {
    if (charge.step !== "submit" && !charge.refunded) total += meta.stepCosts?.[charge.step] ?? 0;
  }
  return total;
}

/** Longest upstream string we keep in a task's storage row (a 2 MB row must never overflow). */
const MAX_KEPT_STRING = 64 * 1024;

/**
 * What of an upstream task object is worth keeping: fields we own are dropped (the upstream's
 * echo of `metadata` would store the same bytes twice) and so is any very long string (an
 * echoed data URI), so a task's storage row stays small whatever the upstream sends.
 */
export function compactUpstreamResult(raw: Record<string, unknown>): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(raw)) {
    if (OWNED_FIELDS.has(field)) continue;
    const compacted = compactValue(value, 0);
    if (compacted !== undefined) kept[field] = compacted;
  }
  return kept;
}

function compactValue(value: unknown, depth: number): unknown {
  if (typeof value === "string") return value.length > MAX_KEPT_STRING ? undefined : value;
  if (value === null || typeof value !== "object") return value;
  if (depth > 6) return undefined;
  if (Array.isArray(value))
    return value.map((v) => compactValue(v, depth + 1)).filter((v) => v !== undefined);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const c = compactValue(v, depth + 1);
    if (c !== undefined) out[k] = c;
  }
  return out;
}

const UNIFIED_STATUS: Record<TaskState["status"], string> = {
  NOT_START: "pending",
  SUBMITTED: "pending",
  MODAL: "pending",
  IN_PROGRESS: "processing",
  SUCCESS: "completed",
  FAILURE: "failed",
  CANCEL: "cancelled",
};

/** The upstream's unified GET /v1/tasks/{id} shape. */
export function unifiedTaskView(meta: TaskMeta, state: TaskState): Record<string, unknown> {
  const view = taskView(meta, state);
  const urls = [view.image_urls, view.video_urls].flatMap((v) => (Array.isArray(v) ? v : []));
  const failed = state.status === "FAILURE" || state.status === "CANCEL";
  return {
    code: 200,
    data: {
      id: meta.taskId,
      status: UNIFIED_STATUS[state.status],
      progress: state.progress,
      result: urls.length ? { images: [{ url: urls }] } : null,
      error: failed ? { code: state.status, message: state.failReason ?? state.status.toLowerCase() } : null,
    },
  };
}

/** Replaces the upstream's ids with ours wherever they appear (customIds, messages). */
export function translateIds<T>(
  value: T,
  meta: Pick<TaskMeta, "taskId" | "upstreamTaskId" | "parentTaskId" | "upstreamParentId">,
): T {
  const pairs: Array<[string, string]> = [];
  if (meta.upstreamTaskId && meta.upstreamTaskId !== meta.taskId)
    pairs.push([meta.upstreamTaskId, meta.taskId]);
  if (meta.upstreamParentId && meta.parentTaskId && meta.upstreamParentId !== meta.parentTaskId) {
    pairs.push([meta.upstreamParentId, meta.parentTaskId]);
  }
  if (!pairs.length) return value;
  let text = JSON.stringify(value);
  for (const [from, to] of pairs) text = text.split(from).join(to);
  return JSON.parse(text) as T;
}

/** The reverse, for customIds a tenant sends back: our ids become the upstream's. */
export function toUpstreamIds(text: string, ours: string, theirs: string | null): string {
  return theirs ? text.split(ours).join(theirs) : text;
}
