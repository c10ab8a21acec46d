/**
 * The action table of upstream-api.md: which fields each submit needs, their
 * ranges, what the result looks like, and what the parent task must be.
 * Everything here is pure; the store applies it to stored tasks.
 */

import { z } from "zod";
import type { Json, JsonObject, ResultKind, Speed, TaskRecord, TaskStatus } from "./types";

export const ACTION_NAMES = [
  "imagine",
  "edits",
  "blend",
  "describe",
  "upscale",
  "variation",
  "high-variation",
  "low-variation",
  "reroll",
  "zoom",
  "pan",
  "inpaint",
  "modal",
  "video",
  "remix-strong",
  "remix-subtle",
] as const;

export type ActionName = (typeof ACTION_NAMES)[number];

export function isActionName(value: string): value is ActionName {
  return (ACTION_NAMES as readonly string[]).includes(value);
}

/** Upper-case name shown in queries: "high-variation" -> "HIGH_VARIATION". */
export function actionLabel(action: ActionName): string {
  return action.toUpperCase().replace(/-/g, "_");
}

export type PanDirection = "left" | "right" | "up" | "down";
export const PAN_DIRECTIONS: readonly PanDirection[] = ["left", "right", "up", "down"];

const VIDEO_TYPES = [
  "vid_1.1_i2v_480",
  "vid_1.1_i2v_720",
  "vid_1.1_i2v_start_end_480",
  "vid_1.1_i2v_start_end_720",
] as const;

// ---------------------------------------------------------------------------
// Field validators

const MAX_IMAGE_BYTES = 12 * 1024 * 1024;

/** Image inputs are public http(s) URLs or base64 data URIs of at most 12 MiB. */
export function isImageRef(value: string): boolean {
  if (value.startsWith("data:")) {
    const comma = value.indexOf(",");
    if (comma < 0 || !value.slice(0, comma).endsWith(";base64")) return false;
    return Math.floor(((value.length - comma - 1) * 3) / 4) <= MAX_IMAGE_BYTES;
  }
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}

const imageRef = z
  .string({ error: "must be a string" })
  .refine(isImageRef, "must be an http(s) URL or a base64 data URI of at most 12 MiB");

function imageList(min: number, max: number) {
  const count = min === max ? `exactly ${min}` : `${min} to ${max}`;
  return z
    .array(imageRef, { error: "must be an array of image URLs" })
    .refine((urls) => urls.length >= min && urls.length <= max, `must hold ${count} image URLs`);
}

function intIn(min: number, max: number) {
  const message = `must be an integer from ${min} to ${max}`;
  return z
    .number({ error: message })
    .refine((v) => Number.isInteger(v) && v >= min && v <= max, message)
    .optional();
}

function numberIn(min: number, max: number) {
  const message = `must be a number from ${min} to ${max}`;
  return z
    .number({ error: message })
    .refine((v) => v >= min && v <= max, message)
    .optional();
}

const optionalString = z.string({ error: "must be a string" }).optional();
const optionalBoolean = z.boolean({ error: "must be a boolean" }).optional();

const commonFields = {
  speed: z.enum(["relax", "fast", "turbo"], { error: "must be relax, fast or turbo" }).optional(),
  metadata: z.record(z.string(), z.json(), { error: "must be a JSON object" }).optional(),
};

const parentFields = {
  task_id: z.string({ error: "must be a string" }).min(1, "must not be empty").optional(),
  custom_id: z.string({ error: "must be a string" }).min(1, "must not be empty").optional(),
  index: intIn(1, 4),
};

const imagineOptions = {
  size: z
    .string({ error: "must be a string" })
    .regex(/^\d{1,4}:\d{1,4}$/, 'must be an aspect ratio like "16:9"')
    .optional(),
  version: z
    .enum(["8.1", "7", "6.1", "5.2", "5.1"], { error: "must be one of 8.1, 7, 6.1, 5.2, 5.1" })
    .optional(),
  niji: z
    .union([z.boolean(), z.string(), z.number()], { error: "must be a boolean, string or number" })
    .optional(),
  stylize: intIn(0, 1000),
  chaos: intIn(0, 100),
  weird: intIn(0, 3000),
  quality: z
    .union([z.literal(0.25), z.literal(0.5), z.literal(1), z.literal(2)], {
      error: "must be one of 0.25, 0.5, 1, 2",
    })
    .optional(),
  style: optionalString,
  seed: intIn(0, 4294967295),
  negative_prompt: optionalString,
  iw: numberIn(0, 3),
  cw: intIn(0, 100),
  sw: intIn(0, 1000),
  cref: optionalString,
  sref: optionalString,
  dref: optionalString,
  tile: optionalBoolean,
  raw: optionalBoolean,
  draft: optionalBoolean,
  hd: optionalBoolean,
  stop: intIn(10, 100),
  repeat: intIn(2, 40),
};

const prompt = z.string({ error: "must be a string" }).trim().min(1, "must not be empty");

// Unknown fields are tolerated (loose objects): clients send extras.
const schemas = {
  imagine: z.looseObject({
    ...commonFields,
    ...imagineOptions,
    prompt,
    image_urls: imageList(0, 4).optional(),
  }),
  edits: z.looseObject({ ...commonFields, ...imagineOptions, prompt, image_urls: imageList(1, 4) }),
  blend: z.looseObject({
    ...commonFields,
    image_urls: imageList(2, 4),
    dimensions: z
      .enum(["SQUARE", "PORTRAIT", "LANDSCAPE"], { error: "must be SQUARE, PORTRAIT or LANDSCAPE" })
      .optional(),
    size: imagineOptions.size,
  }),
  describe: z.looseObject({ ...commonFields, image_urls: imageList(1, 1) }),
  parentOnly: z.looseObject({ ...commonFields, ...parentFields }),
  zoom: z.looseObject({
    ...commonFields,
    ...parentFields,
    zoom_ratio: z
      .number({ error: "must be a number from 1 to 2 (below 2 means 1.5x)" })
      .refine((v) => v >= 1, "must be a number from 1 to 2 (below 2 means 1.5x)")
      .optional(),
  }),
  pan: z.looseObject({
    ...commonFields,
    ...parentFields,
    direction: z.enum(PAN_DIRECTIONS, { error: "must be left, right, up or down" }).optional(),
  }),
  remix: z.looseObject({ ...commonFields, ...parentFields, prompt: prompt.optional() }),
  modal: z.looseObject({
    ...commonFields,
    task_id: z.string({ error: "must be a string" }).min(1, "must not be empty").optional(),
    prompt: prompt.optional(),
    mask_url: imageRef.optional(),
  }),
  video: z.looseObject({
    metadata: commonFields.metadata,
    image_urls: imageList(1, 1).optional(),
    task_id: parentFields.task_id,
    index: intIn(0, 3),
    prompt: optionalString,
    video_type: z.enum(VIDEO_TYPES, { error: `must be one of ${VIDEO_TYPES.join(", ")}` }).optional(),
    end_url: imageRef.optional(),
    motion: z.enum(["low", "high"], { error: "must be low or high" }).optional(),
    animate_mode: optionalString,
    // batch_size is deliberately unchecked: anything but 1, 2, 4 counts as 1.
  }),
};

// ---------------------------------------------------------------------------
// Action table

/** What the parent task must be, beyond existing, being ours and SUCCESS. */
type ParentShape =
  | "none"
  | "grid"
  | "grid-or-upscaled"
  | "upscaled"
  | "imagine-or-reroll"
  | "imagine"
  | "modal";

/** Validated body fields; unknown extras pass through untouched. */
type Fields = Record<string, unknown>;

interface ActionSpec {
  kind: ResultKind;
  schema: z.ZodType<Fields>;
  parent: ParentShape;
  /** The follow-up picks one of the parent's four images (index or custom_id). */
  needsIndex: boolean;
}

const ACTIONS: Record<ActionName, ActionSpec> = {
  imagine: { kind: "grid", schema: schemas.imagine, parent: "none", needsIndex: false },
  edits: { kind: "grid", schema: schemas.edits, parent: "none", needsIndex: false },
  blend: { kind: "grid", schema: schemas.blend, parent: "none", needsIndex: false },
  describe: { kind: "describe", schema: schemas.describe, parent: "none", needsIndex: false },
  upscale: { kind: "single", schema: schemas.parentOnly, parent: "grid", needsIndex: true },
  variation: { kind: "grid", schema: schemas.parentOnly, parent: "grid", needsIndex: true },
  "high-variation": {
    kind: "grid",
    schema: schemas.parentOnly,
    parent: "grid-or-upscaled",
    needsIndex: true,
  },
  "low-variation": { kind: "grid", schema: schemas.parentOnly, parent: "grid-or-upscaled", needsIndex: true },
  reroll: { kind: "grid", schema: schemas.parentOnly, parent: "imagine-or-reroll", needsIndex: false },
  zoom: { kind: "grid", schema: schemas.zoom, parent: "upscaled", needsIndex: false },
  pan: { kind: "grid", schema: schemas.pan, parent: "upscaled", needsIndex: false },
  inpaint: { kind: "grid", schema: schemas.parentOnly, parent: "upscaled", needsIndex: false },
  modal: { kind: "grid", schema: schemas.modal, parent: "modal", needsIndex: false },
  video: { kind: "video", schema: schemas.video, parent: "imagine", needsIndex: false },
  "remix-strong": { kind: "grid", schema: schemas.remix, parent: "grid", needsIndex: true },
  "remix-subtle": { kind: "grid", schema: schemas.remix, parent: "grid", needsIndex: true },
};

export function resultKind(action: ActionName): ResultKind {
  return ACTIONS[action].kind;
}

export function needsIndex(action: ActionName): boolean {
  return ACTIONS[action].needsIndex;
}

// ---------------------------------------------------------------------------
// Submit planning (stateless validation)

/** A validated submit, before any stored task is consulted. */
export interface SubmitPlan {
  action: ActionName;
  taskId: string | null;
  customId: string | null;
  /** 1-based image pick (video: 0-based frame), null when not given. */
  index: number | null;
  prompt: string | null;
  speed: Speed;
  metadata: Json | null;
  imageUrls: string[];
  /** How many tasks to create (imagine `repeat`). */
  repeat: number;
  version: string | null;
  /** Action-specific settings echoed in `params` (direction, zoom, video_type, ...). */
  params: JsonObject;
}

export type PlanResult = { ok: true; plan: SubmitPlan } | { ok: false; message: string };

export function planSubmit(action: ActionName, body: Fields): PlanResult {
  const parsed = ACTIONS[action].schema.safeParse(body);
  if (!parsed.success)
    return { ok: false, message: describeIssue(mostBasicIssue(parsed.error.issues, body), body) };
  const fields = parsed.data;
  const problem = crossFieldProblem(action, fields);
  if (problem) return { ok: false, message: problem };
  return { ok: true, plan: buildPlan(action, fields) };
}

/** A missing required field explains more than a bad optional one: report it first. */
function mostBasicIssue(issues: z.core.$ZodIssue[], body: Fields): z.core.$ZodIssue | undefined {
  return issues.find((issue) => isMissing(issue, body)) ?? issues[0];
}

function isMissing(issue: z.core.$ZodIssue, body: Fields): boolean {
  const top = issue.path[0];
  return issue.path.length === 1 && typeof top === "string" && body[top] === undefined;
}

function describeIssue(issue: z.core.$ZodIssue | undefined, body: Fields): string {
  if (!issue) return "invalid request body";
  const field = issue.path.join(".");
  if (!field) return issue.message;
  return isMissing(issue, body) ? `${field} is required` : `${field}: ${issue.message}`;
}

/** Rules spanning several fields, in the order a client most likely trips them. */
function crossFieldProblem(action: ActionName, fields: Fields): string | null {
  const has = (name: string) => fields[name] !== undefined;
  if (has("index") && has("custom_id")) return "index and custom_id are mutually exclusive";
  const spec = ACTIONS[action];
  if (action === "video") return videoProblem(has);
  if (action === "modal") return has("task_id") ? null : "task_id is required";
  if (spec.parent === "none") return null;
  if (!has("task_id") && !has("custom_id")) return "task_id is required";
  if (spec.needsIndex && !has("index") && !has("custom_id")) {
    return "index is required (1-4) unless custom_id is given";
  }
  if (action === "pan" && !has("direction") && !has("custom_id")) {
    return "direction is required (left, right, up, down) unless custom_id is given";
  }
  return null;
}

function videoProblem(has: (name: string) => boolean): string | null {
  if (has("image_urls") && has("task_id")) return "give either image_urls or task_id, not both";
  if (!has("image_urls") && !has("task_id")) return "image_urls or task_id is required";
  if (has("index") && !has("task_id")) return "index requires task_id";
  return null;
}

/**
 * Midjourney reads `--name value` parameters inside the prompt as well as the fields (also
 * with an em dash); the upstream bills what ran: `--fast`/`--relax`/`--turbo` set the speed
 * and `--repeat N`/`--r N` make N jobs, like the body's fields.
 */
export function promptParameters(prompt: string | null): { speed: Speed | null; repeat: number | null } {
  let speed: Speed | null = null;
  let repeat: number | null = null;
  for (const m of (prompt ?? "").matchAll(/(?:^|\s)(?:--|\u2014)(\w+)(?:\s+(\d+))?/g)) {
    const name = m[1]!.toLowerCase();
    if (name === "fast" || name === "relax" || name === "turbo") speed = name;
    if ((name === "repeat" || name === "r") && m[2]) repeat = Math.min(40, Math.max(1, Number(m[2])));
  }
  return { speed, repeat };
}

function buildPlan(action: ActionName, fields: Fields): SubmitPlan {
  const str = (name: string) => (typeof fields[name] === "string" ? (fields[name] as string) : null);
  const num = (name: string) => (typeof fields[name] === "number" ? (fields[name] as number) : null);
  const inPrompt = promptParameters(str("prompt"));
  return {
    action,
    taskId: str("task_id"),
    customId: str("custom_id"),
    index: num("index"),
    prompt: str("prompt"),
    speed: (str("speed") as Speed | null) ?? inPrompt.speed ?? "relax",
    metadata: (fields.metadata as Json | undefined) ?? null,
    imageUrls: Array.isArray(fields.image_urls) ? (fields.image_urls as string[]) : [],
    repeat: num("repeat") ?? inPrompt.repeat ?? 1,
    version: str("version"),
    params: actionParams(action, fields),
  };
}

/** Settings that shape the result, normalised the way upstream documents them. */
function actionParams(action: ActionName, fields: Fields): JsonObject {
  switch (action) {
    case "zoom": {
      const ratio = fields.zoom_ratio;
      return typeof ratio === "number" ? { zoom: zoomFactor(ratio) } : {};
    }
    case "pan":
      return typeof fields.direction === "string" ? { direction: fields.direction } : {};
    case "blend":
      return { dimensions: (fields.dimensions as string | undefined) ?? "SQUARE" };
    case "modal":
      return { mode: fields.mask_url === undefined ? "outpaint" : "inpaint" };
    case "video":
      return videoParams(fields);
    default:
      return {};
  }
}

/** zoom_ratio below 2 zooms out 1.5x, anything else 2x. */
export function zoomFactor(ratio: number): number {
  return ratio < 2 ? 1.5 : 2;
}

function videoParams(fields: Fields): JsonObject {
  let videoType = (fields.video_type as string | undefined) ?? "vid_1.1_i2v_480";
  // An end frame upgrades the plain kind to its start_end twin.
  if (fields.end_url !== undefined && !videoType.includes("start_end")) {
    videoType = videoType.replace("i2v_", "i2v_start_end_");
  }
  const batch = fields.batch_size;
  const batchSize = batch === 2 || batch === 4 ? batch : 1;
  return {
    video_type: videoType,
    batch_size: batchSize,
    motion: (fields.motion as string | undefined) ?? "low",
  };
}

// ---------------------------------------------------------------------------
// Parent rules

/**
 * Why `parent` cannot be used by `action`, or null when it can. The caller has
 * already checked existence and ownership; `status` is the parent's status now.
 */
export function parentProblem(action: ActionName, parent: TaskRecord, status: TaskStatus): string | null {
  const shape = ACTIONS[action].parent;
  if (shape === "modal") {
    return parent.action === "inpaint" && status === "MODAL"
      ? null
      : `task ${parent.id} is not in MODAL state`;
  }
  if (status !== "SUCCESS") return `task ${parent.id} is not in SUCCESS state`;
  return shapeProblem(action, shape, parent);
}

function shapeProblem(action: ActionName, shape: ParentShape, parent: TaskRecord): string | null {
  const what = `task ${parent.id} is ${actionLabel(parent.action)}`;
  switch (shape) {
    case "upscaled":
      return parent.action === "upscale"
        ? null
        : `This action requires an upscaled task (upscale one image first); ${what}`;
    case "grid":
      if (parent.kind !== "grid") return `This action requires a task with a 4-image grid; ${what}`;
      return action.startsWith("remix-") ? remixVersionProblem(parent) : null;
    case "grid-or-upscaled":
      return parent.kind === "grid" || parent.action === "upscale"
        ? null
        : `This action requires a grid or an upscaled task; ${what}`;
    case "imagine-or-reroll":
      return parent.action === "imagine" || parent.action === "reroll"
        ? null
        : `reroll requires an imagine or reroll task; ${what}`;
    case "imagine":
      return parent.action === "imagine" ? null : `video from task_id requires an imagine task; ${what}`;
    default:
      return null;
  }
}

/** Remix exists from v8; a task made with an explicit older version cannot be remixed. */
function remixVersionProblem(parent: TaskRecord): string | null {
  if (parent.version === null || Number.parseFloat(parent.version) >= 8) return null;
  return `remix requires a v8+ task; task ${parent.id} was made with version ${parent.version}`;
}
