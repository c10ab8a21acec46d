/** Public list prices (USD) as the upstream reports them in `cost`. */

import type { ActionName } from "./actions";
import type { Speed } from "./types";

const IMAGINE_PRICE: Record<Speed, number> = { relax: 0.04504, fast: 0.05504, turbo: 0.1 };
/** Every other image action (upscale and the /modal step included). */
const IMAGE_ACTION_PRICE: Record<Speed, number> = { relax: 0.05504, fast: 0.05504, turbo: 0.1 };
const VIDEO_PRICE = { "480": 0.2, "720": 0.4 } as const;

/** Avoid float noise like 0.6000000000000001 in the reported cost. */
function roundUsd(value: number): number {
  return Math.round(value * 1e5) / 1e5;
}

export function imageActionCost(action: ActionName, speed: Speed): number {
  if (action === "inpaint") return 0; // only its /modal step is charged
  return action === "imagine" ? IMAGINE_PRICE[speed] : IMAGE_ACTION_PRICE[speed];
}

export function videoCost(videoType: string, batchSize: number): number {
  const perVideo = videoType.endsWith("_720") ? VIDEO_PRICE["720"] : VIDEO_PRICE["480"];
  return roundUsd(perVideo * batchSize);
}

export function modalCost(speed: Speed): number {
  return IMAGE_ACTION_PRICE[speed];
}
