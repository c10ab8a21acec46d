/**
 * Buttons in Midjourney's customId grammar, and the way back from a customId
 * to what it selects. Every customId carries the task's job hash, which the
 * store maps back to the task, so follow-ups may name a parent by custom_id only.
 */

import type { PanDirection } from "./actions";
import { findJobHash } from "./ids";
import type { ResultKind } from "./types";

export interface Button {
  customId: string;
  label: string;
}

const CELLS = [1, 2, 3, 4] as const;

const PAN_ARROWS: Record<PanDirection, string> = { left: "⬅️", right: "➡️", up: "⬆️", down: "⬇️" };

/** Grids: U1-U4, 🔄, V1-V4. Upscaled images: vary, zoom out and pan. Others: none. */
export function buttonsFor(kind: ResultKind, hash: string): Button[] {
  if (kind === "grid") return gridButtons(hash);
  if (kind === "single") return upscaledButtons(hash);
  return [];
}

function gridButtons(hash: string): Button[] {
  return [
    ...CELLS.map((n) => ({ customId: `MJ::JOB::upsample::${n}::${hash}`, label: `U${n}` })),
    { customId: `MJ::JOB::reroll::0::${hash}::SOLO`, label: "🔄" },
    ...CELLS.map((n) => ({ customId: `MJ::JOB::variation::${n}::${hash}`, label: `V${n}` })),
  ];
}

function upscaledButtons(hash: string): Button[] {
  const panButtons = (Object.keys(PAN_ARROWS) as PanDirection[]).map((direction) => ({
    customId: `MJ::JOB::pan_${direction}::1::${hash}::SOLO`,
    label: PAN_ARROWS[direction],
  }));
  return [
    { customId: `MJ::JOB::low_variation::1::${hash}::SOLO`, label: "Vary (Subtle)" },
    { customId: `MJ::JOB::high_variation::1::${hash}::SOLO`, label: "Vary (Strong)" },
    { customId: `MJ::Inpaint::1::${hash}::SOLO`, label: "Vary (Region)" },
    { customId: `MJ::Outpaint::50::1::${hash}::SOLO`, label: "Zoom Out 2x" },
    { customId: `MJ::Outpaint::75::1::${hash}::SOLO`, label: "Zoom Out 1.5x" },
    ...panButtons,
  ];
}

/** What a customId selects, beyond the task its hash names. */
export interface CustomIdSelection {
  hash: string;
  /** 1-based image, for upsample/variation-style buttons. */
  index: number | null;
  direction: PanDirection | null;
  /** Zoom-out factor for the Outpaint buttons (50 -> 2x, 75 -> 1.5x). */
  zoom: number | null;
}

export function parseCustomId(customId: string): CustomIdSelection | null {
  const hash = findJobHash(customId);
  const parts = customId.split("::");
  if (!hash || parts[0] !== "MJ") return null;
  const selection: CustomIdSelection = { hash, index: null, direction: null, zoom: null };
  if (parts[1] === "Outpaint") {
    selection.zoom = parts[2] === "50" ? 2 : 1.5;
    return selection;
  }
  if (parts[1] !== "JOB") return selection;
  const job = parts[2] ?? "";
  if (job.startsWith("pan_")) selection.direction = job.slice(4) as PanDirection;
  else if (job !== "reroll") selection.index = Number.parseInt(parts[3] ?? "", 10) || null;
  return selection;
}
