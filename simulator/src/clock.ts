/**
 * Status and progress are derived from time when a task is read, so the
 * simulator needs no alarms: a task stores when its working phase started and
 * how long it lasts, and every read computes where it is now. Clocks only move
 * forward, so a terminal state, once reached, never changes.
 */

import type { ActionName } from "./actions";
import type { Speed, TaskRecord, TaskStatus } from "./types";

const SECOND = 1000;
const MINUTE = 60 * SECOND;

/** Inpaint waits this long (simulated) for /modal, then is cancelled. */
export const MODAL_TIMEOUT_MS = 30 * MINUTE;
/** Tasks older than this answer 404, as upstream keeps them 3 days. */
export const RETENTION_MS = 3 * 24 * 60 * MINUTE;
/** Progress shown while an inpaint task waits for /modal. */
export const MODAL_PROGRESS = 15;

export const MODAL_STEP_MS = 75 * SECOND;

const IMAGINE_MS: Record<Speed, number> = { relax: 100 * SECOND, fast: 45 * SECOND, turbo: 20 * SECOND };
const IMAGE_ACTION_MS: Record<Speed, number> = { relax: 45 * SECOND, fast: 45 * SECOND, turbo: 20 * SECOND };

/** Simulated length of the working phase of a freshly submitted task. */
export function simulatedDurationMs(action: ActionName, speed: Speed): number {
  switch (action) {
    case "imagine":
    case "edits":
      return IMAGINE_MS[speed];
    case "upscale":
      return 50; // a local crop upstream: milliseconds
    case "describe":
      return 2 * SECOND;
    case "video":
      return 60 * SECOND;
    case "modal":
      return MODAL_STEP_MS;
    default:
      return IMAGE_ACTION_MS[speed];
  }
}

/** Real time = simulated duration x scale. */
export function scaled(simulatedMs: number, timeScale: number): number {
  return Math.round(simulatedMs * timeScale);
}

/**
 * The MODAL deadline is scaled too, except that scale 0 keeps it at 30 min:
 * "0" means work finishes at once, but the client must still get a chance to
 * call /modal (tests jump past the deadline with /_sim/clock).
 */
export function modalTimeoutMs(timeScale: number): number {
  return timeScale > 0 ? scaled(MODAL_TIMEOUT_MS, timeScale) : MODAL_TIMEOUT_MS;
}

export interface TaskPhase {
  status: TaskStatus;
  /** Integer percent 0..100. */
  progress: number;
  /** Simulated-clock ms at which the task became terminal; null if it is not. */
  completedMs: number | null;
}

// Share of the working phase spent in each state; progress bands follow the
// documented state machine: NOT_START 0%, SUBMITTED 5-30%, IN_PROGRESS 30-99%.
const NOT_START_SHARE = 0.1;
const SUBMITTED_SHARE = 0.2;

export function derivePhase(task: TaskRecord, nowMs: number): TaskPhase {
  if (task.runStartMs === null) return modalPhase(task, nowMs);
  const elapsed = nowMs - task.runStartMs;
  if (elapsed >= task.runMs) {
    const status = task.outcome === "success" ? "SUCCESS" : "FAILURE";
    return { status, progress: 100, completedMs: task.runStartMs + task.runMs };
  }
  const fraction = Math.max(0, elapsed / task.runMs);
  if (fraction < NOT_START_SHARE) return { status: "NOT_START", progress: 0, completedMs: null };
  if (fraction < NOT_START_SHARE + SUBMITTED_SHARE) {
    const within = (fraction - NOT_START_SHARE) / SUBMITTED_SHARE;
    return { status: "SUBMITTED", progress: Math.floor(5 + within * 25), completedMs: null };
  }
  const within = (fraction - NOT_START_SHARE - SUBMITTED_SHARE) / (1 - NOT_START_SHARE - SUBMITTED_SHARE);
  return { status: "IN_PROGRESS", progress: Math.min(99, Math.floor(30 + within * 69)), completedMs: null };
}

function modalPhase(task: TaskRecord, nowMs: number): TaskPhase {
  const deadline = task.modalDeadlineMs;
  if (deadline !== null && nowMs >= deadline) {
    return { status: "CANCEL", progress: MODAL_PROGRESS, completedMs: deadline };
  }
  return { status: "MODAL", progress: MODAL_PROGRESS, completedMs: null };
}

export function isTerminal(status: TaskStatus): boolean {
  return status === "SUCCESS" || status === "FAILURE" || status === "CANCEL";
}
