/**
 * Task records -> the two query shapes of upstream-api.md: the bare
 * Midjourney task object and the unified {code,data} task. Output URLs are
 * absolute, built from the origin the caller used to reach the simulator.
 */

import { actionLabel } from "./actions";
import { buttonsFor } from "./buttons";
import type { TaskPhase } from "./clock";
import { hashString } from "./ids";
import type { JsonObject, TaskRecord, TaskStatus } from "./types";

export const MODAL_TIMEOUT_REASON = "MODAL timed out: /modal was not called within 30 minutes";

interface Outputs {
  gridImageUrl: string | null;
  imageUrls: string[];
  videoUrls: string[];
}

/** Outputs exist only once the task succeeded. */
function outputsOf(task: TaskRecord, status: TaskStatus, origin: string): Outputs {
  const none: Outputs = { gridImageUrl: null, imageUrls: [], videoUrls: [] };
  if (status !== "SUCCESS") return none;
  const base = `${origin}/cdn/${task.id}`;
  switch (task.kind) {
    case "grid":
      return {
        ...none,
        gridImageUrl: `${base}/grid.png`,
        imageUrls: [0, 1, 2, 3].map((i) => `${base}/${i}.png`),
      };
    case "single":
      return { ...none, imageUrls: [`${base}/0.png`] };
    case "video":
      return {
        ...none,
        videoUrls: Array.from({ length: task.batchSize }, (_, i) => `${base}/video_${i}.mp4`),
      };
    default:
      return none;
  }
}

function failReason(task: TaskRecord, status: TaskStatus): string | null {
  if (status === "FAILURE") return task.failReason ?? "Simulated failure";
  if (status === "CANCEL") return MODAL_TIMEOUT_REASON;
  return null;
}

const toUnixSeconds = (ms: number) => Math.floor(ms / 1000);

/** `GET /v1/midjourney/{task_id}`: the bare task object. */
export function renderTask(task: TaskRecord, phase: TaskPhase, origin: string): JsonObject {
  const outputs = outputsOf(task, phase.status, origin);
  const done = phase.status === "SUCCESS";
  const body: JsonObject = {
    id: task.id,
    status: phase.status,
    action: actionLabel(task.action),
    progress: `${phase.progress}%`,
    prompt: task.kind === "describe" && done ? describeText(task.seed) : task.prompt,
  };
  if (task.kind === "grid") body.grid_image_url = outputs.gridImageUrl;
  body.image_urls = outputs.imageUrls;
  if (task.kind === "video") {
    body.video_url = outputs.videoUrls[0] ?? null;
    body.video_urls = outputs.videoUrls;
  }
  if (task.kind === "describe") body.description = done ? describeText(task.seed) : null;
  body.buttons = done ? buttonsFor(task.kind, task.jobHash).map((b) => ({ ...b })) : [];
  body.fail_reason = failReason(task, phase.status);
  body.cost = task.cost;
  body.created = toUnixSeconds(task.createdMs);
  body.completed = phase.completedMs === null ? null : toUnixSeconds(phase.completedMs);
  if (task.metadata !== null) body.metadata = task.metadata;
  return body;
}

const UNIFIED_STATUS: Record<TaskStatus, string> = {
  NOT_START: "pending",
  SUBMITTED: "pending",
  MODAL: "pending",
  IN_PROGRESS: "processing",
  SUCCESS: "completed",
  FAILURE: "failed",
  CANCEL: "cancelled",
};

/** `GET /v1/tasks/{task_id}`: the unified {code,data} shape. */
export function renderUnified(task: TaskRecord, phase: TaskPhase, origin: string): JsonObject {
  const outputs = outputsOf(task, phase.status, origin);
  const reason = failReason(task, phase.status);
  return {
    code: 200,
    data: {
      id: task.id,
      action: actionLabel(task.action),
      status: UNIFIED_STATUS[phase.status],
      progress: phase.progress,
      result: phase.status === "SUCCESS" ? unifiedResult(task, outputs) : null,
      error:
        reason === null
          ? null
          : { code: phase.status === "CANCEL" ? "cancelled" : "failed", message: reason },
    },
  };
}

function unifiedResult(task: TaskRecord, outputs: Outputs): JsonObject {
  if (task.kind === "video") return { images: [], videos: [{ url: outputs.videoUrls }] };
  if (task.kind === "describe") return { images: [], description: describeText(task.seed) };
  return { images: [{ url: outputs.imageUrls }] };
}

// Describe: four suggestions, deterministic per input image.
const SUBJECTS = [
  "a lighthouse",
  "an old fox",
  "a paper city",
  "a glass orchard",
  "a sleeping robot",
  "a red kite",
];
const STYLES = [
  "in watercolor",
  "as a 35mm photo",
  "in ukiyo-e style",
  "as low-poly 3D",
  "in charcoal",
  "as neon art",
];
const MOODS = [
  "at dusk",
  "in heavy fog",
  "under a green sky",
  "on a winter morning",
  "in golden light",
  "at night",
];

function describeText(seed: string): string {
  const hash = hashString(seed);
  const marks = ["1️⃣", "2️⃣", "3️⃣", "4️⃣"];
  return marks
    .map((mark, i) => {
      const pick = (list: string[], salt: number) => list[(hash >>> (i * 3 + salt)) % list.length];
      return `${mark} ${pick(SUBJECTS, 0)} ${pick(STYLES, 1)} ${pick(MOODS, 2)} --ar 1:1`;
    })
    .join("\n\n");
}
