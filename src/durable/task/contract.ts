/**
 * The TaskObject's RPC contract: what callers (routes, the billing service, sibling tasks)
 * hand it and what it answers. Errors cross the RPC boundary serialized.
 */
import type { AdmissionRequest } from "../../db/admission";
import { ApiError, type ErrorCode, type ErrorStatus } from "../../domain/errors";
import type { TaskState } from "../../domain/task-machine";
import type { TaskMeta } from "../../domain/task-view";
import type { RouteCandidate } from "../../services/upstream-pool";

export interface StartInput {
  meta: TaskMeta;
  requestId: string;
  /**
   * The other tasks of a request that makes several upstream jobs (`repeat`), in order. They
   * are recorded (`awaitLead`) before this lead object forwards, which then hands each its
   * upstream task id in the order of the upstream's answer.
   */
  siblings?: string[];
  /**
   * The pool members to try, in order (src/services/upstream-pool.ts `routeFor`): each is
   * tried only with a slot from its gate. Absent: the default upstream, without a gate (as
   * before the pool, for callers that route nothing themselves).
   */
  route?: RouteCandidate[];
}

/** What the lead hands a sibling: its upstream task, or why there is none. */
export type SiblingAttachment =
  | { ok: true; upstreamTaskId: string; status: "submitted" | "modal"; upstreamId?: string }
  | { ok: false; error: SerializedError; reason: string };

export interface SerializedError {
  status: ErrorStatus;
  code: ErrorCode;
  message: string;
  field?: string;
  headers?: Record<string, string>;
}

export type SubmitOutcome =
  | {
      ok: true;
      status: "submitted" | "modal" /** every task of the answer, lead first */;
      taskIds?: string[];
    }
  | { ok: false; error: SerializedError };

/** A task query's answer: `final` when nothing can change the view any more (isFinal). */
export interface TaskQueryAnswer {
  view: Record<string, unknown>;
  final: boolean;
}

export interface ParentInfo {
  status: TaskState["status"];
  action: string;
  upstreamTaskId: string | null;
  /** The pool member that ran it: its follow-ups must go there too. */
  upstreamId: string;
  /** The customIds of the task's buttons, as tenants see them. */
  customIds: string[];
}

/** A /modal's admission as the billing service prepares it; the object adds the task and step. */
export type ModalAdmissionInput = Omit<AdmissionRequest, "taskId" | "parentTaskId" | "kind">;

/** The charge of one /modal step of a task. */
export type ModalAdmission = Omit<AdmissionRequest, "kind">;

export interface ModalInput {
  tenantId: string;
  keyId: string;
  body: Record<string, unknown>;
  admission: ModalAdmissionInput;
  requestId: string;
}

export interface StoredEvent {
  seq: number;
  at: number;
  data: Record<string, unknown>;
}

export const serializeError = (error: ApiError): SerializedError => ({
  status: error.status,
  code: error.code,
  message: error.message,
  field: error.options.field,
  headers: error.options.headers,
});

export const deserializeError = (error: SerializedError): ApiError =>
  ApiError.fromWire(error.status, error.code, error.message, { field: error.field, headers: error.headers });

export const refusedOutcome = (error: ApiError): SubmitOutcome => ({
  ok: false,
  error: serializeError(error),
});
