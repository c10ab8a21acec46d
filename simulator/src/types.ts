/** Shared shapes of the simulator (the Worker layer and the Durable Object). */

import type { ActionName } from "./actions";

export type Speed = "relax" | "fast" | "turbo";

/** What a finished task produces; decides the fields of the query object. */
export type ResultKind = "grid" | "single" | "video" | "describe";

export type TaskStatus =
  | "NOT_START"
  | "SUBMITTED"
  | "IN_PROGRESS"
  | "MODAL"
  | "SUCCESS"
  | "FAILURE"
  | "CANCEL";

/** JSON values only: everything crossing the Durable Object RPC boundary. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** A task as stored. Times are on the owner's simulated clock (ms). */
export interface TaskRecord {
  id: string;
  apiKey: string;
  action: ActionName;
  kind: ResultKind;
  /** Discord-style job hash used in button customIds; maps back to the task. */
  jobHash: string;
  parentId: string | null;
  /** 0-based cell of the source image (upscale crop, video first frame). */
  pickIndex: number | null;
  prompt: string;
  /** Seed text for the generated pictures (prompt plus lineage). */
  seed: string;
  speed: Speed | null;
  version: string | null;
  batchSize: number;
  cost: number;
  metadata: Json | null;
  /** Action-specific echo (direction, zoom, video_type, mask_url, ...). */
  params: JsonObject;
  outcome: "success" | "failure";
  failReason: string | null;
  createdMs: number;
  /** When the working phase began; null while an inpaint waits in MODAL. */
  runStartMs: number | null;
  /** Real length of the working phase (simulated duration x time scale). */
  runMs: number;
  modalDeadlineMs: number | null;
}

/** A response computed by the store, turned into a Response by the Worker. */
export interface ApiResult {
  status: number;
  /** A JSON object. Typed loosely: the recursive Json type is too deep for RPC stub typing. */
  body: object;
  headers?: Record<string, string>;
}
