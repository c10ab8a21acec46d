/**
 * The task state machine: a pure function from (state, observation) to (state, events,
 * money effects). It is the only place that decides whether a task's charge is kept or
 * refunded, so every refund rule lives here and is property-tested.
 */

export const STATUSES = [
  "NOT_START",
  "SUBMITTED",
  "IN_PROGRESS",
  "MODAL",
  "SUCCESS",
  "FAILURE",
  "CANCEL",
] as const;
export type TaskStatus = (typeof STATUSES)[number];
export type TerminalStatus = "SUCCESS" | "FAILURE" | "CANCEL";

const TERMINAL: ReadonlySet<TaskStatus> = new Set(["SUCCESS", "FAILURE", "CANCEL"]);
export const isTerminal = (status: TaskStatus): status is TerminalStatus => TERMINAL.has(status);

/** Published statuses only move forward in this order (MODAL comes before the modal job runs). */
const RANK: Record<TaskStatus, number> = {
  NOT_START: 0,
  MODAL: 1,
  SUBMITTED: 2,
  IN_PROGRESS: 3,
  SUCCESS: 4,
  FAILURE: 4,
  CANCEL: 4,
};

export type RefundReason =
  | "upstream_failure"
  | "upstream_cancel"
  | "submit_failed"
  | "modal_timeout"
  | "upstream_timeout";

/** Why one step (a /modal) is given back while the task goes on. */
export type StepRefundReason = "modal_refused" | "modal_not_run";

export interface Settlement {
  outcome: "keep" | "refund";
  reason: RefundReason | null;
  /** True once D1 has recorded it; until then every timer retries it (D1 makes the retry idempotent). */
  recorded: boolean;
}

/** Output fields the upstream reported (image urls, buttons, ...), passed to tenants as they came. */
export type UpstreamResult = Record<string, unknown>;

/** One charged step of the task ('submit', 'modal.1', …) and whether it was given back. */
export interface ChargeStep {
  step: string;
  /** The machine decided to refund this step on its own (the task went on). */
  refunded: boolean;
  /** D1 has recorded that refund; until then every timer retries it (D1 makes it idempotent). */
  refundRecorded: boolean;
}

export interface TaskState {
  status: TaskStatus;
  progress: number;
  failReason: string | null;
  result: UpstreamResult;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
  /** A /modal call is being charged and forwarded; the MODAL deadline waits for it. */
  modalPending: boolean;
  /**
   * A /modal whose forward failed ambiguously (timeout, 5xx, unreadable answer): the upstream
   * may have run it. Polling decides: it went on (keep its charge) or the task is still in
   * MODAL (refund that step only) or was cancelled (refund everything).
   */
  modalUnconfirmed: { step: string; since: number; modalSightings: number } | null;
  /** Every charged step; a refunding settlement gives back all of them (each at most once). */
  charges: ChargeStep[];
  /** What the upstream reported it billed for the task (its `cost`), in micro-USD. */
  upstreamCostMicros: number | null;
  errorStreak: number;
  settlement: Settlement | null;
  /** Set when the upstream reported a result after we had already given up on the task. */
  lateUpstreamStatus: TaskStatus | null;
  timers: {
    pollAt: number | null;
    modalDeadlineAt: number | null;
    lifetimeAt: number | null;
    lateWatchUntil: number | null;
  };
}

export interface MachineConfig {
  /** Quick actions (upscale, describe) are polled sooner. */
  quick: boolean;
  modalTimeoutMs: number;
  maxLifetimeMs: number;
  /** After giving up on a task we still look at the upstream, rarely, for this long. */
  lateWatchMs: number;
  /** A number in [0, 1) for poll jitter; injected so the machine stays pure. */
  random: () => number;
}

export type Observation =
  | { type: "accepted"; at: number; upstreamStatus: "submitted" | "modal" }
  | { type: "rejected"; at: number; reason: string }
  | {
      type: "upstream";
      at: number;
      status: TaskStatus;
      progress: number;
      failReason: string | null;
      result: UpstreamResult;
      upstreamCostMicros?: number | null;
    }
  | { type: "upstream_error"; at: number; error: string }
  | { type: "timer"; at: number }
  | { type: "modal_requested"; at: number }
  | { type: "modal_accepted"; at: number; step: string }
  | { type: "modal_failed"; at: number; step: string; reason: string; ambiguous: boolean }
  | { type: "modal_released"; at: number }
  | { type: "settlement_recorded"; at: number }
  | { type: "step_refund_recorded"; at: number; step: string };

export type Effect =
  | {
      type: "settle";
      status: TerminalStatus;
      outcome: "keep" | "refund";
      reason: RefundReason | null;
      /** The steps whose charges a refund gives back (all of the task's). */
      refundSteps: string[];
    }
  | { type: "refund_step"; step: string; reason: StepRefundReason }
  | { type: "poll" }
  | { type: "late_upstream_report"; status: TaskStatus };

export interface PublishedChange {
  status: TaskStatus;
  progress: number;
}

export type ModalRefusal = "modal_not_available" | "modal_expired" | "modal_in_progress";

export interface Transition {
  state: TaskState;
  /** Changes of status or progress that subscribers must see, in order. */
  changes: PublishedChange[];
  effects: Effect[];
  /** Only for `modal_requested`: why the /modal call is refused, if it is. */
  modalRefusal?: ModalRefusal;
}

export const POLL = {
  quickFirstMs: 300,
  quickMs: 1_000,
  minMs: 3_000,
  jitterMs: 2_000,
  modalMs: 30_000,
  backoffBaseMs: 2_000,
  backoffMaxMs: 60_000,
  lateWatchMs: 15 * 60_000,
  settlementRetryMs: 5_000,
  /**
   * After an ambiguous /modal, how many polls in a row must still see MODAL before we refund
   * it (at modalConfirmPollMs apart: about 15 s, well past the time an accepted /modal takes
   * to show as SUBMITTED upstream).
   */
  modalConfirmPolls: 5,
  modalConfirmPollMs: 3_000,
} as const;

export function initialState(at: number, config: MachineConfig): TaskState {
  return {
    status: "NOT_START",
    progress: 0,
    failReason: null,
    result: {},
    createdAt: at,
    updatedAt: at,
    finishedAt: null,
    modalPending: false,
    modalUnconfirmed: null,
    charges: [{ step: "submit", refunded: false, refundRecorded: false }],
    upstreamCostMicros: null,
    errorStreak: 0,
    settlement: null,
    lateUpstreamStatus: null,
    timers: {
      pollAt: null,
      modalDeadlineAt: null,
      lifetimeAt: at + config.maxLifetimeMs,
      lateWatchUntil: null,
    },
  };
}

/** How long to wait before the next upstream poll. */
export function pollDelay(state: TaskState, config: MachineConfig, first = false): number {
  const jitter = config.random();
  if (state.errorStreak > 0) {
    const backoff = Math.min(POLL.backoffMaxMs, POLL.backoffBaseMs * 2 ** (state.errorStreak - 1));
    return Math.round(backoff * (0.75 + 0.5 * jitter));
  }
  if (state.modalUnconfirmed) return POLL.modalConfirmPollMs;
  if (state.status === "MODAL") return POLL.modalMs;
  if (config.quick) return first ? POLL.quickFirstMs : POLL.quickMs;
  return POLL.minMs + Math.round(POLL.jitterMs * jitter);
}

/** The earliest moment anything is due; the Durable Object arms its single alarm for it. */
export function nextWakeAt(state: TaskState): number | null {
  const { pollAt, modalDeadlineAt, lifetimeAt } = state.timers;
  const candidates: number[] = [];
  if (state.settlement && !state.settlement.recorded)
    candidates.push(state.updatedAt + POLL.settlementRetryMs);
  if (unrecordedStepRefunds(state).length) candidates.push(state.updatedAt + POLL.settlementRetryMs);
  if (!isTerminal(state.status)) {
    // The MODAL deadline only matters in MODAL and while no /modal is pending: a deadline
    // that cannot fire must not wake us over and over.
    const deadline = modalDeadlineArmed(state) ? modalDeadlineAt : null;
    for (const t of [pollAt, deadline, lifetimeAt]) if (t !== null) candidates.push(t);
  } else if (pollAt !== null) {
    candidates.push(pollAt); // late watch after giving up on the upstream
  }
  return candidates.length ? Math.min(...candidates) : null;
}

/**
 * Whether nothing can change this state any more: a terminal task with no settlement to record
 * and no late watch of the upstream left (no timer at all). Its views are then final.
 */
export const isFinal = (state: TaskState): boolean => isTerminal(state.status) && nextWakeAt(state) === null;

export function transition(state: TaskState, observation: Observation, config: MachineConfig): Transition {
  switch (observation.type) {
    case "accepted":
      return onAccepted(state, observation, config);
    case "rejected":
      return finish(state, observation.at, "FAILURE", observation.reason, "submit_failed");
    case "upstream":
      return onUpstream(state, observation, config);
    case "upstream_error":
      return onUpstreamError(state, observation.at, config);
    case "timer":
      return onTimer(state, observation.at, config);
    case "modal_requested":
      return onModalRequested(state, observation.at);
    case "modal_accepted":
      return onModalAccepted(state, observation.at, config);
    case "modal_failed":
      return onModalFailed(state, observation, config);
    case "modal_released":
      // Admission refused the /modal. Its step stays listed: refunding a step that was never
      // charged is a no-op, while forgetting one that was would keep money we must give back.
      return unchanged({ ...state, modalPending: false });
    case "settlement_recorded":
      return unchanged(
        state.settlement ? { ...state, settlement: { ...state.settlement, recorded: true } } : state,
      );
    case "step_refund_recorded":
      return unchanged({
        ...state,
        charges: state.charges.map((c) => (c.step === observation.step ? { ...c, refundRecorded: true } : c)),
      });
  }
}

/** The MODAL deadline only runs while the task waits for a /modal nobody is sending or confirming. */
function modalDeadlineArmed(state: TaskState): boolean {
  return state.status === "MODAL" && !state.modalPending && !state.modalUnconfirmed;
}

function unrecordedStepRefunds(state: TaskState): ChargeStep[] {
  return state.charges.filter((c) => c.refunded && !c.refundRecorded);
}

function refundStepEffect(step: ChargeStep, reason: StepRefundReason): Effect {
  return { type: "refund_step", step: step.step, reason };
}

function unchanged(state: TaskState, effects: Effect[] = []): Transition {
  return { state, changes: [], effects };
}

function onAccepted(
  state: TaskState,
  observation: { at: number; upstreamStatus: "submitted" | "modal" },
  config: MachineConfig,
): Transition {
  if (state.status !== "NOT_START" || state.settlement) return unchanged(state);
  const at = observation.at;
  if (observation.upstreamStatus === "modal") {
    // Progress never goes back, even if an odd upstream report got there first.
    const progress = Math.max(state.progress, 15);
    const next: TaskState = {
      ...state,
      status: "MODAL",
      progress,
      updatedAt: at,
      timers: { ...state.timers, modalDeadlineAt: at + config.modalTimeoutMs },
    };
    next.timers.pollAt = at + pollDelay(next, config, true);
    return { state: next, changes: [{ status: "MODAL", progress }], effects: [] };
  }
  const next = { ...state, updatedAt: at };
  next.timers = { ...state.timers, pollAt: at + pollDelay(next, config, true) };
  return unchanged(next);
}

function onUpstream(
  state: TaskState,
  observation: Extract<Observation, { type: "upstream" }>,
  config: MachineConfig,
): Transition {
  if (isTerminal(state.status)) return onLateObservation(state, observation);
  const base: TaskState = {
    ...state,
    errorStreak: 0,
    result: { ...state.result, ...observation.result },
    upstreamCostMicros: observation.upstreamCostMicros ?? state.upstreamCostMicros,
  };
  if (state.modalUnconfirmed) return decideUnconfirmedModal(base, observation, config);
  return onUpstreamConfirmed(base, observation, config);
}

/** Non-terminal progress: status and progress only ever move forward in what we publish. */
function advance(
  state: TaskState,
  at: number,
  status: TaskStatus,
  progress: number,
  config: MachineConfig,
): Transition {
  const forward = RANK[status] > RANK[state.status] && !(status === "MODAL" && state.modalPending);
  const nextStatus = forward ? status : state.status;
  // An unreadable progress (NaN) counts as no news, never as a published "NaN%".
  const reported = Number.isNaN(progress) ? state.progress : Math.min(99, Math.max(0, Math.round(progress)));
  const nextProgress = Math.max(state.progress, reported);
  const next: TaskState = { ...state, status: nextStatus, progress: nextProgress, updatedAt: at };
  if (nextStatus === "MODAL" && state.status !== "MODAL") {
    next.timers = { ...next.timers, modalDeadlineAt: at + config.modalTimeoutMs };
  } else if (nextStatus !== "MODAL" && next.timers.modalDeadlineAt !== null) {
    // Past MODAL (the upstream runs the modal job): a stale deadline would wake us in a loop.
    next.timers = { ...next.timers, modalDeadlineAt: null };
  }
  next.timers = { ...next.timers, pollAt: at + pollDelay(next, config) };
  const changed = nextStatus !== state.status || nextProgress !== state.progress;
  return {
    state: next,
    changes: changed ? [{ status: nextStatus, progress: nextProgress }] : [],
    effects: [],
  };
}

/**
 * While an ambiguous /modal waits for the upstream's word: any sign the modal job ran keeps
 * its charge; MODAL for long enough means it never ran (refund that step only, wait for a
 * new /modal); CANCEL and FAILURE end the task through `finish`, which refunds every step.
 */
function decideUnconfirmedModal(
  state: TaskState,
  observation: Extract<Observation, { type: "upstream" }>,
  config: MachineConfig,
): Transition {
  const pending = state.modalUnconfirmed!;
  if (observation.status === "MODAL" || observation.status === "NOT_START") {
    const sightings = pending.modalSightings + 1;
    if (sightings < POLL.modalConfirmPolls) {
      const next = {
        ...state,
        updatedAt: observation.at,
        modalUnconfirmed: { ...pending, modalSightings: sightings },
      };
      next.timers = { ...next.timers, pollAt: observation.at + pollDelay(next, config) };
      return unchanged(next);
    }
    const charges = state.charges.map((c) =>
      c.step === pending.step ? { ...c, refunded: true, refundRecorded: false } : c,
    );
    const next: TaskState = { ...state, modalUnconfirmed: null, charges, updatedAt: observation.at };
    next.timers = { ...next.timers, pollAt: observation.at + pollDelay(next, config) };
    const step = charges.find((c) => c.step === pending.step)!;
    return unchanged(next, [refundStepEffect(step, "modal_not_run")]);
  }
  // The upstream moved past MODAL (or ended the task): the modal step stands or falls with it.
  return onUpstreamConfirmed({ ...state, modalUnconfirmed: null }, observation, config);
}

function onUpstreamConfirmed(
  state: TaskState,
  observation: Extract<Observation, { type: "upstream" }>,
  config: MachineConfig,
): Transition {
  const at = observation.at;
  switch (observation.status) {
    case "SUCCESS":
      return finish(state, at, "SUCCESS", null, null);
    case "FAILURE":
      return finish(state, at, "FAILURE", observation.failReason ?? "upstream failure", "upstream_failure");
    case "CANCEL":
      return finish(state, at, "CANCEL", observation.failReason ?? "cancelled upstream", "upstream_cancel");
    default:
      return advance(state, at, observation.status, observation.progress, config);
  }
}

function onLateObservation(
  state: TaskState,
  observation: Extract<Observation, { type: "upstream" }>,
): Transition {
  const gaveUp = state.settlement?.reason === "upstream_timeout";
  if (!gaveUp) return unchanged(state);
  if (!isTerminal(observation.status)) {
    return unchanged({
      ...state,
      timers: { ...state.timers, pollAt: nextLateWatch(state.timers.lateWatchUntil, observation.at) },
    });
  }
  if (state.lateUpstreamStatus) return unchanged(state);
  const next: TaskState = {
    ...state,
    lateUpstreamStatus: observation.status,
    timers: { ...state.timers, pollAt: null, lateWatchUntil: null },
  };
  return unchanged(next, [{ type: "late_upstream_report", status: observation.status }]);
}

/** After giving up on a task we still look at the upstream every lateWatchMs, until `until`. */
function nextLateWatch(until: number | null, at: number): number | null {
  return until !== null && at + POLL.lateWatchMs <= until ? at + POLL.lateWatchMs : null;
}

function onUpstreamError(state: TaskState, at: number, config: MachineConfig): Transition {
  if (isTerminal(state.status)) {
    return unchanged({
      ...state,
      timers: { ...state.timers, pollAt: nextLateWatch(state.timers.lateWatchUntil, at) },
    });
  }
  const next: TaskState = { ...state, errorStreak: state.errorStreak + 1, updatedAt: at };
  next.timers = { ...state.timers, pollAt: at + pollDelay(next, config) };
  return unchanged(next);
}

function onTimer(state: TaskState, at: number, config: MachineConfig): Transition {
  const { modalDeadlineAt, lifetimeAt, pollAt } = state.timers;
  if (!isTerminal(state.status)) {
    if (modalDeadlineArmed(state) && modalDeadlineAt !== null && at >= modalDeadlineAt) {
      return finish(state, at, "CANCEL", "no /modal within the MODAL timeout", "modal_timeout");
    }
    if (lifetimeAt !== null && at >= lifetimeAt) {
      const gaveUp = finish(state, at, "FAILURE", "upstream_timeout", "upstream_timeout");
      const lateWatchUntil = at + config.lateWatchMs;
      gaveUp.state.timers = {
        ...gaveUp.state.timers,
        lateWatchUntil,
        pollAt: nextLateWatch(lateWatchUntil, at),
      };
      return gaveUp;
    }
  }
  const effects: Effect[] = [];
  for (const step of unrecordedStepRefunds(state)) effects.push(refundStepEffect(step, "modal_refused"));
  if (state.settlement && !state.settlement.recorded) effects.push(settleEffect(state));
  if (pollAt !== null && at >= pollAt) effects.push({ type: "poll" });
  return unchanged(state, effects);
}

function onModalRequested(state: TaskState, at: number): Transition {
  const refuse = (modalRefusal: ModalRefusal): Transition => ({ ...unchanged(state), modalRefusal });
  // Only a MODAL task is ever cancelled (by our deadline or the upstream's): either way it expired.
  if (state.status === "CANCEL") return refuse("modal_expired");
  if (state.status !== "MODAL") return refuse("modal_not_available");
  if (state.modalPending || state.modalUnconfirmed) return refuse("modal_in_progress");
  const deadline = state.timers.modalDeadlineAt;
  if (deadline !== null && at >= deadline) {
    const expired = finish(state, at, "CANCEL", "no /modal within the MODAL timeout", "modal_timeout");
    return { ...expired, modalRefusal: "modal_expired" };
  }
  // The step is known before it is charged, so a settlement racing the /modal's admission
  // refunds it too (the refund is a no-op if the charge never landed).
  const step = `modal.${state.charges.filter((c) => c.step.startsWith("modal.")).length + 1}`;
  return unchanged({
    ...state,
    modalPending: true,
    updatedAt: at,
    charges: [...state.charges, { step, refunded: false, refundRecorded: false }],
  });
}

/** The step a pending /modal charges (named when it was requested). */
export function pendingModalStep(state: TaskState): string | null {
  return state.modalPending ? (state.charges.at(-1)?.step ?? null) : null;
}

function onModalFailed(
  state: TaskState,
  observation: Extract<Observation, { type: "modal_failed" }>,
  config: MachineConfig,
): Transition {
  if (!state.modalPending || isTerminal(state.status)) return unchanged(state);
  const at = observation.at;
  const settled: TaskState = { ...state, modalPending: false, updatedAt: at };
  // A poll already saw the modal job running: whatever the answer said, it runs; keep it.
  if (RANK[state.status] >= RANK.SUBMITTED) return unchanged(settled);
  if (observation.ambiguous) {
    const next: TaskState = {
      ...settled,
      modalUnconfirmed: { step: observation.step, since: at, modalSightings: 0 },
    };
    next.timers = { ...next.timers, pollAt: at + pollDelay(next, config) };
    return unchanged(next);
  }
  // The upstream clearly refused it: the task is still waiting in MODAL; give this step back.
  const charges = settled.charges.map((c) =>
    c.step === observation.step ? { ...c, refunded: true, refundRecorded: false } : c,
  );
  const step = charges.find((c) => c.step === observation.step);
  return unchanged({ ...settled, charges }, step ? [refundStepEffect(step, "modal_refused")] : []);
}

function onModalAccepted(state: TaskState, at: number, config: MachineConfig): Transition {
  if (!state.modalPending || isTerminal(state.status)) return unchanged(state);
  // A poll may already have seen the modal job running (its answer can beat the /modal
  // answer): the task never moves back to SUBMITTED.
  const status = RANK[state.status] >= RANK.SUBMITTED ? state.status : "SUBMITTED";
  const next: TaskState = {
    ...state,
    modalPending: false,
    status,
    updatedAt: at,
    timers: { ...state.timers, modalDeadlineAt: null },
  };
  next.timers.pollAt = at + pollDelay(next, config, true);
  const changes = status === state.status ? [] : [{ status, progress: next.progress }];
  return { state: next, changes, effects: [] };
}

function settleEffect(state: TaskState): Effect {
  const settlement = state.settlement!;
  return {
    type: "settle",
    status: state.status as TerminalStatus,
    outcome: settlement.outcome,
    reason: settlement.reason,
    refundSteps: settlement.outcome === "refund" ? state.charges.map((c) => c.step) : [],
  };
}

/** The one way into a terminal state, and so the one place that decides keep or refund. */
function finish(
  state: TaskState,
  at: number,
  status: TerminalStatus,
  failReason: string | null,
  refundReason: RefundReason | null,
): Transition {
  if (isTerminal(state.status) || state.settlement) return unchanged(state);
  const settlement: Settlement = {
    outcome: status === "SUCCESS" ? "keep" : "refund",
    reason: status === "SUCCESS" ? null : refundReason,
    recorded: false,
  };
  const progress = 100;
  const next: TaskState = {
    ...state,
    status,
    progress,
    failReason,
    updatedAt: at,
    finishedAt: at,
    modalPending: false,
    modalUnconfirmed: null,
    settlement,
    timers: { pollAt: null, modalDeadlineAt: null, lifetimeAt: null, lateWatchUntil: null },
  };
  return { state: next, changes: [{ status, progress }], effects: [settleEffect(next)] };
}
