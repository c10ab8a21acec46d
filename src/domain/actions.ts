/** Every action the upstream accepts under POST /v1/midjourney/generations/{action}. */
export const ACTIONS = [
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
export type Action = (typeof ACTIONS)[number];

export const SPEEDS = ["relax", "fast", "turbo"] as const;
export type Speed = (typeof SPEEDS)[number];

export const VIDEO_TYPES = [
  "vid_1.1_i2v_480",
  "vid_1.1_i2v_720",
  "vid_1.1_i2v_start_end_480",
  "vid_1.1_i2v_start_end_720",
] as const;
export type VideoType = (typeof VIDEO_TYPES)[number];

export function isAction(value: string): value is Action {
  return (ACTIONS as readonly string[]).includes(value);
}

/** Actions that act on an earlier task and therefore need its `task_id`. */
export const FOLLOW_UP_ACTIONS: ReadonlySet<Action> = new Set<Action>([
  "upscale",
  "variation",
  "high-variation",
  "low-variation",
  "reroll",
  "zoom",
  "pan",
  "inpaint",
  "video",
  "remix-strong",
  "remix-subtle",
]);

/** Upstream finishes these in milliseconds to seconds, so the first poll comes early. */
export const QUICK_ACTIONS: ReadonlySet<Action> = new Set<Action>(["upscale", "describe"]);

/** Video resolution from `video_type`; an `end_url` upgrades any type to its start_end kind, which keeps the resolution. */
export function videoResolution(videoType: string | undefined): "480p" | "720p" {
  return videoType?.endsWith("_720") ? "720p" : "480p";
}

/** Upstream counts any batch_size other than 2 or 4 as 1. */
export function effectiveBatchSize(batchSize: unknown): 1 | 2 | 4 {
  return batchSize === 2 || batchSize === 4 ? batchSize : 1;
}
