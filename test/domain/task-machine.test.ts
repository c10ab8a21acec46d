import { describe, expect, it } from "vitest";
import {
  initialState,
  isFinal,
  isTerminal,
  type MachineConfig,
  nextWakeAt,
  type Observation,
  POLL,
  pollDelay,
  type TaskState,
  type TaskStatus,
  type Transition,
  transition,
} from "../../src/domain/task-machine";

const T0 = 1_760_000_000_000;
const MIN = 60_000;
const HOUR = 60 * MIN;

function config(overrides: Partial<MachineConfig> = {}): MachineConfig {
  return {
    quick: false,
    modalTimeoutMs: 30 * MIN,
    maxLifetimeMs: 2 * HOUR,
    lateWatchMs: 24 * HOUR,
    random: () => 0.5,
    ...overrides,
  };
}

/** Feeds observations one after another; returns every transition. */
function run(observations: Observation[], cfg = config(), start = initialState(T0, cfg)) {
  const steps: Transition[] = [];
  let state = start;
  for (const observation of observations) {
    const step = transition(state, observation, cfg);
    steps.push(step);
    state = step.state;
  }
  return { state, steps, last: steps.at(-1)! };
}

const upstream = (
  at: number,
  status: TaskStatus,
  progress: number,
  extra: { failReason?: string | null; result?: Record<string, unknown> } = {},
): Observation => ({
  type: "upstream",
  at,
  status,
  progress,
  failReason: extra.failReason ?? null,
  result: extra.result ?? {},
});

const accepted = (at = T0 + 100, upstreamStatus: "submitted" | "modal" = "submitted"): Observation => ({
  type: "accepted",
  at,
  upstreamStatus,
});

/** A task in MODAL (accepted as modal at T0+100). */
function modalTask(cfg = config()) {
  return run([accepted(T0 + 100, "modal")], cfg).state;
}

/** A task SUBMITTED upstream (accepted at T0+100, then one SUBMITTED observation). */
function runningTask(cfg = config()) {
  return run([accepted(), upstream(T0 + 4_000, "SUBMITTED", 10)], cfg).state;
}

describe("initialState", () => {
  it("starts NOT_START at 0% with only the lifetime timer armed", () => {
    const s = initialState(T0, config());
    expect(s.status).toBe("NOT_START");
    expect(s.progress).toBe(0);
    expect(s.settlement).toBeNull();
    expect(s.modalPending).toBe(false);
    expect(s.errorStreak).toBe(0);
    expect(s.timers).toEqual({
      pollAt: null,
      modalDeadlineAt: null,
      lifetimeAt: T0 + 2 * HOUR,
      lateWatchUntil: null,
    });
    expect(nextWakeAt(s)).toBe(T0 + 2 * HOUR);
  });

  it("uses the configured maximum lifetime", () => {
    expect(initialState(T0, config({ maxLifetimeMs: 5 * MIN })).timers.lifetimeAt).toBe(T0 + 5 * MIN);
  });
});

describe("accepted", () => {
  it("submitted: stays NOT_START (nothing to publish) and schedules the first poll 3–5 s later", () => {
    const { last } = run([accepted(T0 + 100)]);
    expect(last.state.status).toBe("NOT_START");
    expect(last.changes).toEqual([]);
    expect(last.effects).toEqual([]);
    expect(last.state.timers.pollAt).toBe(T0 + 100 + 4_000); // random 0.5 → 3000 + 1000
    expect(last.state.settlement).toBeNull();
  });

  it("submitted, quick action: the first poll comes after 300 ms", () => {
    const { last } = run([accepted(T0 + 100)], config({ quick: true }));
    expect(last.state.timers.pollAt).toBe(T0 + 100 + POLL.quickFirstMs);
  });

  it("modal: publishes MODAL 15%, arms the 30 min MODAL deadline and polls every 30 s", () => {
    const { last } = run([accepted(T0 + 100, "modal")]);
    expect(last.state.status).toBe("MODAL");
    expect(last.state.progress).toBe(15);
    expect(last.changes).toEqual([{ status: "MODAL", progress: 15 }]);
    expect(last.effects).toEqual([]);
    expect(last.state.timers.modalDeadlineAt).toBe(T0 + 100 + 30 * MIN);
    expect(last.state.timers.pollAt).toBe(T0 + 100 + POLL.modalMs);
    expect(nextWakeAt(last.state)).toBe(T0 + 100 + POLL.modalMs);
  });

  it("MODAL never lowers a progress already reported", () => {
    const odd = run([accepted(), upstream(T0 + 4_000, "NOT_START", 20), accepted(T0 + 5_000, "modal")]);
    expect(odd.state.progress).toBe(20);
  });

  it("a second accepted is ignored", () => {
    const first = modalTask();
    const again = transition(first, accepted(T0 + 5_000, "submitted"), config());
    expect(again.state).toEqual(first);
    expect(again.changes).toEqual([]);
    expect(again.effects).toEqual([]);
  });

  it("an accepted after the task was already rejected changes nothing", () => {
    const { last } = run([{ type: "rejected", at: T0 + 50, reason: "boom" }, accepted(T0 + 100)]);
    expect(last.state.status).toBe("FAILURE");
    expect(last.changes).toEqual([]);
    expect(last.effects).toEqual([]);
    expect(last.state.timers.pollAt).toBeNull();
  });
});

describe("rejected", () => {
  it("fails the task and refunds it (submit_failed), exactly one settle effect", () => {
    const { last } = run([{ type: "rejected", at: T0 + 50, reason: "upstream refused the submit: nope" }]);
    expect(last.state.status).toBe("FAILURE");
    expect(last.state.progress).toBe(100);
    expect(last.state.failReason).toBe("upstream refused the submit: nope");
    expect(last.state.finishedAt).toBe(T0 + 50);
    expect(last.state.settlement).toEqual({ outcome: "refund", reason: "submit_failed", recorded: false });
    expect(last.changes).toEqual([{ status: "FAILURE", progress: 100 }]);
    expect(last.effects).toEqual([
      {
        type: "settle",
        status: "FAILURE",
        outcome: "refund",
        reason: "submit_failed",
        refundSteps: ["submit"],
      },
    ]);
    expect(last.state.timers).toEqual({
      pollAt: null,
      modalDeadlineAt: null,
      lifetimeAt: null,
      lateWatchUntil: null,
    });
  });

  it("a second rejected does not settle again", () => {
    const { steps } = run([
      { type: "rejected", at: T0 + 50, reason: "a" },
      { type: "rejected", at: T0 + 60, reason: "b" },
    ]);
    expect(steps[1]!.effects).toEqual([]);
    expect(steps[1]!.state.failReason).toBe("a");
  });
});

describe("upstream observations", () => {
  it("moves forward NOT_START → SUBMITTED → IN_PROGRESS and publishes each change", () => {
    const { steps } = run([
      accepted(),
      upstream(T0 + 4_000, "NOT_START", 0),
      upstream(T0 + 8_000, "SUBMITTED", 12),
      upstream(T0 + 12_000, "IN_PROGRESS", 45),
      upstream(T0 + 16_000, "IN_PROGRESS", 80),
    ]);
    expect(steps.map((s) => s.changes)).toEqual([
      [],
      [],
      [{ status: "SUBMITTED", progress: 12 }],
      [{ status: "IN_PROGRESS", progress: 45 }],
      [{ status: "IN_PROGRESS", progress: 80 }],
    ]);
    expect(steps.every((s) => s.effects.length === 0)).toBe(true);
    // every non-terminal observation schedules the next poll 3–5 s later
    expect(steps[4]!.state.timers.pollAt).toBe(T0 + 16_000 + 4_000);
  });

  it("a backwards status is not published: the task stays IN_PROGRESS at its progress", () => {
    const { state, steps } = run([
      accepted(),
      upstream(T0 + 4_000, "IN_PROGRESS", 60),
      upstream(T0 + 8_000, "SUBMITTED", 20),
      upstream(T0 + 12_000, "NOT_START", 0),
      upstream(T0 + 16_000, "MODAL", 15),
    ]);
    expect(state.status).toBe("IN_PROGRESS");
    expect(state.progress).toBe(60);
    expect(steps.slice(2).every((s) => s.changes.length === 0)).toBe(true);
    // but we keep polling
    expect(state.timers.pollAt).toBe(T0 + 16_000 + 4_000);
  });

  it("lower progress within the same status is not published", () => {
    const { state, last } = run([
      accepted(),
      upstream(T0 + 4_000, "IN_PROGRESS", 70),
      upstream(T0 + 8_000, "IN_PROGRESS", 40),
    ]);
    expect(state.progress).toBe(70);
    expect(last.changes).toEqual([]);
  });

  it("a duplicate observation publishes nothing the second time", () => {
    const obs = upstream(T0 + 4_000, "IN_PROGRESS", 50);
    const { steps } = run([accepted(), obs, { ...obs, at: T0 + 8_000 }]);
    expect(steps[1]!.changes).toHaveLength(1);
    expect(steps[2]!.changes).toEqual([]);
    expect(steps[2]!.effects).toEqual([]);
  });

  it("non-terminal progress is clamped to 0..99 (100 only comes with a terminal status)", () => {
    const high = run([accepted(), upstream(T0 + 4_000, "IN_PROGRESS", 100)]).state;
    expect(high.progress).toBe(99);
    const higher = run([accepted(), upstream(T0 + 4_000, "IN_PROGRESS", 250)]).state;
    expect(higher.progress).toBe(99);
    const negative = run([accepted(), upstream(T0 + 4_000, "SUBMITTED", -7)]);
    expect(negative.state.progress).toBe(0);
    expect(negative.last.changes).toEqual([{ status: "SUBMITTED", progress: 0 }]);
  });

  it("an unreadable progress (NaN, Infinity) never reaches what we publish", () => {
    const { state, steps } = run([
      accepted(),
      upstream(T0 + 4_000, "SUBMITTED", 20),
      upstream(T0 + 8_000, "IN_PROGRESS", Number.NaN),
      upstream(T0 + 12_000, "IN_PROGRESS", Number.POSITIVE_INFINITY),
    ]);
    expect(Number.isFinite(state.progress)).toBe(true);
    expect(state.progress).toBeGreaterThanOrEqual(20);
    expect(state.progress).toBeLessThanOrEqual(99);
    for (const change of steps.flatMap((s) => s.changes)) expect(Number.isFinite(change.progress)).toBe(true);
  });

  it("MODAL observed for a task accepted as submitted enters MODAL and arms the deadline", () => {
    const { state, last } = run([accepted(), upstream(T0 + 4_000, "MODAL", 15)]);
    expect(state.status).toBe("MODAL");
    expect(last.changes).toEqual([{ status: "MODAL", progress: 15 }]);
    expect(state.timers.modalDeadlineAt).toBe(T0 + 4_000 + 30 * MIN);
    expect(state.timers.pollAt).toBe(T0 + 4_000 + POLL.modalMs);
  });

  it("merges the upstream's result fields as they come", () => {
    const { state } = run([
      accepted(),
      upstream(T0 + 4_000, "IN_PROGRESS", 40, { result: { a: 1, image_urls: [] } }),
      upstream(T0 + 8_000, "IN_PROGRESS", 60, { result: { b: 2, image_urls: ["x"] } }),
    ]);
    expect(state.result).toEqual({ a: 1, b: 2, image_urls: ["x"] });
  });

  it("SUCCESS: 100%, keeps the charge, one settle effect, all timers off", () => {
    const { state, last } = run([
      accepted(),
      upstream(T0 + 4_000, "IN_PROGRESS", 50),
      upstream(T0 + 30_000, "SUCCESS", 100, { result: { image_urls: ["u"] } }),
    ]);
    expect(state.status).toBe("SUCCESS");
    expect(state.progress).toBe(100);
    expect(state.failReason).toBeNull();
    expect(state.finishedAt).toBe(T0 + 30_000);
    expect(state.result).toEqual({ image_urls: ["u"] });
    expect(state.settlement).toEqual({ outcome: "keep", reason: null, recorded: false });
    expect(last.changes).toEqual([{ status: "SUCCESS", progress: 100 }]);
    expect(last.effects).toEqual([
      { type: "settle", status: "SUCCESS", outcome: "keep", reason: null, refundSteps: [] },
    ]);
    expect(state.timers).toEqual({
      pollAt: null,
      modalDeadlineAt: null,
      lifetimeAt: null,
      lateWatchUntil: null,
    });
  });

  it("SUCCESS straight from NOT_START (a fast upscale) goes to 100% at once", () => {
    const { state, last } = run([accepted(), upstream(T0 + 400, "SUCCESS", 100)], config({ quick: true }));
    expect(state.status).toBe("SUCCESS");
    expect(last.changes).toEqual([{ status: "SUCCESS", progress: 100 }]);
  });

  it("FAILURE: refunds with reason upstream_failure and keeps the upstream's fail_reason", () => {
    const { state, last } = run([
      accepted(),
      upstream(T0 + 9_000, "FAILURE", 100, { failReason: "Banned prompt detected" }),
    ]);
    expect(state.status).toBe("FAILURE");
    expect(state.failReason).toBe("Banned prompt detected");
    expect(state.settlement).toEqual({ outcome: "refund", reason: "upstream_failure", recorded: false });
    expect(last.effects).toEqual([
      {
        type: "settle",
        status: "FAILURE",
        outcome: "refund",
        reason: "upstream_failure",
        refundSteps: ["submit"],
      },
    ]);
  });

  it("FAILURE without a fail_reason still gets one", () => {
    const { state } = run([accepted(), upstream(T0 + 9_000, "FAILURE", 100)]);
    expect(state.failReason).toBeTruthy();
  });

  it("CANCEL from the upstream refunds with reason upstream_cancel", () => {
    const { state, last } = run([accepted(), upstream(T0 + 9_000, "CANCEL", 15)]);
    expect(state.status).toBe("CANCEL");
    expect(state.progress).toBe(100);
    expect(last.effects).toEqual([
      {
        type: "settle",
        status: "CANCEL",
        outcome: "refund",
        reason: "upstream_cancel",
        refundSteps: ["submit"],
      },
    ]);
  });

  it("after a terminal status nothing the upstream says changes the task or its money", () => {
    const done = run([accepted(), upstream(T0 + 9_000, "SUCCESS", 100)]).state;
    for (const status of ["FAILURE", "CANCEL", "SUCCESS", "IN_PROGRESS", "NOT_START", "MODAL"] as const) {
      const step = transition(done, upstream(T0 + 20_000, status, 10, { failReason: "late" }), config());
      expect(step.state).toEqual(done);
      expect(step.changes).toEqual([]);
      expect(step.effects).toEqual([]);
    }
  });

  it("a successful observation resets the error streak", () => {
    const { state } = run([
      accepted(),
      { type: "upstream_error", at: T0 + 4_000, error: "server_error" },
      { type: "upstream_error", at: T0 + 6_000, error: "server_error" },
      upstream(T0 + 10_000, "IN_PROGRESS", 30),
    ]);
    expect(state.errorStreak).toBe(0);
    expect(state.timers.pollAt).toBe(T0 + 10_000 + 4_000);
  });
});

describe("upstream_error: backoff", () => {
  function afterErrors(n: number, random = 0.5) {
    const cfg = config({ random: () => random });
    let state = run([accepted()], cfg).state;
    let at = T0 + 4_000;
    const delays: number[] = [];
    for (let i = 0; i < n; i++) {
      const step = transition(state, { type: "upstream_error", at, error: "timeout" }, cfg);
      expect(step.changes).toEqual([]);
      expect(step.effects).toEqual([]);
      delays.push(step.state.timers.pollAt! - at);
      state = step.state;
      at = state.timers.pollAt!;
    }
    return { state, delays };
  }

  it("doubles from 2 s and caps at 60 s (without jitter)", () => {
    const { state, delays } = afterErrors(10);
    expect(delays).toEqual([2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000, 60_000, 60_000]);
    expect(state.errorStreak).toBe(10);
    expect(state.status).toBe("NOT_START");
    expect(state.settlement).toBeNull();
  });

  it("jitters ±25% around the backoff", () => {
    expect(afterErrors(1, 0).delays[0]).toBe(1_500);
    expect(afterErrors(1, 0.999_999).delays[0]).toBe(2_500);
    expect(afterErrors(8, 0).delays.at(-1)).toBe(45_000);
    expect(afterErrors(8, 0.999_999).delays.at(-1)).toBe(75_000);
  });

  it("stays finite after a very long streak", () => {
    const cfg = config();
    const state: TaskState = { ...runningTask(cfg), errorStreak: 5_000 };
    const step = transition(state, { type: "upstream_error", at: T0 + 10 * MIN, error: "x" }, cfg);
    expect(step.state.timers.pollAt).toBe(T0 + 10 * MIN + 60_000);
  });

  it("errors never end the task by themselves: the lifetime timer still stands", () => {
    const { state } = afterErrors(20);
    expect(state.timers.lifetimeAt).toBe(T0 + 2 * HOUR);
    expect(nextWakeAt(state)).toBeLessThanOrEqual(T0 + 2 * HOUR);
  });

  it("an error after a terminal state does not schedule a poll", () => {
    const done = run([accepted(), upstream(T0 + 9_000, "SUCCESS", 100)]).state;
    const step = transition(done, { type: "upstream_error", at: T0 + 10_000, error: "x" }, config());
    expect(step.state.timers.pollAt).toBeNull();
    expect(step.state.errorStreak).toBe(0);
    expect(step.effects).toEqual([]);
  });
});

describe("timer", () => {
  it("asks for a poll when the poll is due, and for nothing before", () => {
    const state = runningTask();
    const pollAt = state.timers.pollAt!;
    const early = transition(state, { type: "timer", at: pollAt - 1 }, config());
    expect(early.effects).toEqual([]);
    expect(early.state).toEqual(state);
    const due = transition(state, { type: "timer", at: pollAt }, config());
    expect(due.effects).toEqual([{ type: "poll" }]);
    expect(due.changes).toEqual([]);
    // the poll's outcome moves the poll time, not the timer
    expect(due.state.timers.pollAt).toBe(pollAt);
  });

  it("MODAL deadline: CANCEL and refund (modal_timeout) once the deadline is reached", () => {
    const state = modalTask();
    const deadline = state.timers.modalDeadlineAt!;
    const before = transition(state, { type: "timer", at: deadline - 1 }, config());
    expect(before.state.status).toBe("MODAL");
    const at = transition(state, { type: "timer", at: deadline }, config());
    expect(at.state.status).toBe("CANCEL");
    expect(at.state.progress).toBe(100);
    expect(at.state.settlement).toEqual({ outcome: "refund", reason: "modal_timeout", recorded: false });
    expect(at.changes).toEqual([{ status: "CANCEL", progress: 100 }]);
    expect(at.effects).toEqual([
      {
        type: "settle",
        status: "CANCEL",
        outcome: "refund",
        reason: "modal_timeout",
        refundSteps: ["submit"],
      },
    ]);
  });

  it("MODAL deadline waits while a /modal is being charged and forwarded", () => {
    const requested = transition(modalTask(), { type: "modal_requested", at: T0 + 29 * MIN }, config());
    expect(requested.modalRefusal).toBeUndefined();
    const late = transition(requested.state, { type: "timer", at: T0 + 45 * MIN }, config());
    expect(late.state.status).toBe("MODAL");
    expect(late.state.settlement).toBeNull();
    expect(late.effects.some((e) => e.type === "settle")).toBe(false);
  });

  it("a configured MODAL timeout is honoured", () => {
    const cfg = config({ modalTimeoutMs: 60_000 });
    const state = modalTask(cfg);
    expect(state.timers.modalDeadlineAt).toBe(T0 + 100 + 60_000);
    expect(transition(state, { type: "timer", at: T0 + 100 + 60_000 }, cfg).state.status).toBe("CANCEL");
  });

  it("lifetime exceeded: FAILURE upstream_timeout, refunded, then a rare late watch", () => {
    const cfg = config();
    const state = runningTask(cfg);
    const at = T0 + 2 * HOUR;
    const step = transition(state, { type: "timer", at }, cfg);
    expect(step.state.status).toBe("FAILURE");
    expect(step.state.failReason).toBe("upstream_timeout");
    expect(step.state.settlement).toEqual({ outcome: "refund", reason: "upstream_timeout", recorded: false });
    expect(step.changes).toEqual([{ status: "FAILURE", progress: 100 }]);
    expect(step.effects).toEqual([
      {
        type: "settle",
        status: "FAILURE",
        outcome: "refund",
        reason: "upstream_timeout",
        refundSteps: ["submit"],
      },
    ]);
    expect(step.state.timers.lateWatchUntil).toBe(at + 24 * HOUR);
    expect(step.state.timers.pollAt).toBe(at + POLL.lateWatchMs);
    expect(step.state.timers.lifetimeAt).toBeNull();
    // the settlement retry comes first, then the late watch
    expect(nextWakeAt(step.state)).toBe(at + POLL.settlementRetryMs);
    const recorded = transition(step.state, { type: "settlement_recorded", at: at + 1 }, cfg).state;
    expect(nextWakeAt(recorded)).toBe(at + POLL.lateWatchMs);
  });

  it("lifetime applies in MODAL too (even with a /modal pending: nothing may hang forever)", () => {
    const cfg = config({ modalTimeoutMs: 3 * HOUR });
    const pending = transition(modalTask(cfg), { type: "modal_requested", at: T0 + MIN }, cfg).state;
    const step = transition(pending, { type: "timer", at: T0 + 2 * HOUR }, cfg);
    expect(step.state.status).toBe("FAILURE");
    expect(step.state.settlement?.reason).toBe("upstream_timeout");
    expect(step.state.modalPending).toBe(false);
  });

  it("late watch: keeps looking every 15 min, reports a late terminal status once, money untouched", () => {
    const cfg = config();
    const gaveUpAt = T0 + 2 * HOUR;
    let state = transition(runningTask(cfg), { type: "timer", at: gaveUpAt }, cfg).state;
    state = transition(state, { type: "settlement_recorded", at: gaveUpAt + 10 }, cfg).state;
    const settlement = state.settlement;

    const due = transition(state, { type: "timer", at: state.timers.pollAt! }, cfg);
    expect(due.effects).toEqual([{ type: "poll" }]);

    const stillRunning = transition(state, upstream(gaveUpAt + 15 * MIN, "IN_PROGRESS", 90), cfg);
    expect(stillRunning.changes).toEqual([]);
    expect(stillRunning.effects).toEqual([]);
    expect(stillRunning.state.status).toBe("FAILURE");
    expect(stillRunning.state.timers.pollAt).toBe(gaveUpAt + 30 * MIN);

    const pollError = transition(
      stillRunning.state,
      { type: "upstream_error", at: gaveUpAt + 30 * MIN, error: "x" },
      cfg,
    );
    expect(pollError.state.timers.pollAt).toBe(gaveUpAt + 45 * MIN);
    expect(pollError.effects).toEqual([]);

    const late = transition(
      pollError.state,
      upstream(gaveUpAt + 45 * MIN, "SUCCESS", 100, { result: { image_urls: ["z"] } }),
      cfg,
    );
    expect(late.effects).toEqual([{ type: "late_upstream_report", status: "SUCCESS" }]);
    expect(late.changes).toEqual([]);
    expect(late.state.status).toBe("FAILURE");
    expect(late.state.settlement).toEqual(settlement);
    expect(late.state.lateUpstreamStatus).toBe("SUCCESS");
    expect(late.state.timers.pollAt).toBeNull();
    expect(late.state.timers.lateWatchUntil).toBeNull();
    expect(nextWakeAt(late.state)).toBeNull();

    const again = transition(late.state, upstream(gaveUpAt + 50 * MIN, "FAILURE", 100), cfg);
    expect(again.effects).toEqual([]);
    expect(again.state.lateUpstreamStatus).toBe("SUCCESS");
  });

  it("late watch ends after lateWatchMs", () => {
    const cfg = config({ lateWatchMs: 20 * MIN });
    const gaveUpAt = T0 + 2 * HOUR;
    const state = transition(runningTask(cfg), { type: "timer", at: gaveUpAt }, cfg).state;
    expect(state.timers.pollAt).toBe(gaveUpAt + 15 * MIN);
    const next = transition(state, upstream(gaveUpAt + 15 * MIN, "IN_PROGRESS", 90), cfg);
    expect(next.state.timers.pollAt).toBeNull();
    const short = transition(
      runningTask(config({ lateWatchMs: 5 * MIN })),
      { type: "timer", at: gaveUpAt },
      config({ lateWatchMs: 5 * MIN }),
    );
    expect(short.state.timers.pollAt).toBeNull();
  });

  it("no late watch for tasks the upstream itself finished", () => {
    const done = run([accepted(), upstream(T0 + 9_000, "FAILURE", 100)]).state;
    const step = transition(done, upstream(T0 + 20_000, "SUCCESS", 100), config());
    expect(step.effects).toEqual([]);
    expect(step.state.lateUpstreamStatus).toBeNull();
  });

  it("retries an unrecorded settlement on every timer, with the same decision", () => {
    const failed = run([accepted(), upstream(T0 + 9_000, "FAILURE", 100, { failReason: "x" })]);
    const first = failed.last.effects[0];
    for (const at of [T0 + 10_000, T0 + 20_000, T0 + 5 * HOUR]) {
      const step = transition(failed.state, { type: "timer", at }, config());
      expect(step.effects).toEqual([first]);
      expect(step.state.status).toBe("FAILURE");
    }
    const recorded = transition(failed.state, { type: "settlement_recorded", at: T0 + 21_000 }, config());
    expect(recorded.state.settlement?.recorded).toBe(true);
    expect(transition(recorded.state, { type: "timer", at: T0 + 30_000 }, config()).effects).toEqual([]);
  });

  it("the lifetime does not fire before it is due", () => {
    const state = runningTask();
    const step = transition(state, { type: "timer", at: T0 + 2 * HOUR - 1 }, config());
    expect(step.state.status).toBe("SUBMITTED");
  });
});

describe("modal", () => {
  it("modal_requested in MODAL marks it pending; a second one is refused while pending", () => {
    const first = transition(modalTask(), { type: "modal_requested", at: T0 + MIN }, config());
    expect(first.modalRefusal).toBeUndefined();
    expect(first.state.modalPending).toBe(true);
    expect(first.state.status).toBe("MODAL");
    expect(first.changes).toEqual([]);
    expect(first.effects).toEqual([]);
    const second = transition(first.state, { type: "modal_requested", at: T0 + MIN + 1 }, config());
    expect(second.modalRefusal).toBe("modal_in_progress");
    expect(second.state).toEqual(first.state);
  });

  it("modal_requested outside MODAL is refused as not available", () => {
    for (const state of [initialState(T0, config()), run([accepted()]).state, runningTask()]) {
      const step = transition(state, { type: "modal_requested", at: T0 + MIN }, config());
      expect(step.modalRefusal).toBe("modal_not_available");
      expect(step.state).toEqual(state);
    }
    const done = run([accepted(), upstream(T0 + 9_000, "SUCCESS", 100)]).state;
    expect(transition(done, { type: "modal_requested", at: T0 + MIN }, config()).modalRefusal).toBe(
      "modal_not_available",
    );
  });

  it("modal_requested after the MODAL timeout cancelled the task: modal_expired, nothing else", () => {
    const cancelled = transition(modalTask(), { type: "timer", at: T0 + 31 * MIN }, config()).state;
    const step = transition(cancelled, { type: "modal_requested", at: T0 + 32 * MIN }, config());
    expect(step.modalRefusal).toBe("modal_expired");
    expect(step.state).toEqual(cancelled);
    expect(step.effects).toEqual([]);
  });

  it("modal_requested after the UPSTREAM cancelled the MODAL task: also modal_expired", () => {
    const cancelled = transition(modalTask(), upstream(T0 + 30 * MIN, "CANCEL", 15), config()).state;
    const step = transition(cancelled, { type: "modal_requested", at: T0 + 31 * MIN }, config());
    expect(step.modalRefusal).toBe("modal_expired");
    expect(step.effects).toEqual([]);
  });

  it("modal_requested past the deadline before the timer ran: cancels now (refund) and refuses", () => {
    const state = modalTask();
    const step = transition(state, { type: "modal_requested", at: state.timers.modalDeadlineAt! }, config());
    expect(step.modalRefusal).toBe("modal_expired");
    expect(step.state.status).toBe("CANCEL");
    expect(step.state.modalPending).toBe(false);
    expect(step.effects).toEqual([
      {
        type: "settle",
        status: "CANCEL",
        outcome: "refund",
        reason: "modal_timeout",
        refundSteps: ["submit"],
      },
    ]);
  });

  it("modal_accepted: SUBMITTED on the same task, deadline cleared, polling resumes", () => {
    const cfg = config();
    const pending = transition(modalTask(cfg), { type: "modal_requested", at: T0 + MIN }, cfg).state;
    const step = transition(pending, { type: "modal_accepted", at: T0 + MIN + 300, step: "modal.1" }, cfg);
    expect(step.state.status).toBe("SUBMITTED");
    expect(step.state.modalPending).toBe(false);
    expect(step.state.progress).toBe(15);
    expect(step.changes).toEqual([{ status: "SUBMITTED", progress: 15 }]);
    expect(step.effects).toEqual([]);
    expect(step.state.timers.modalDeadlineAt).toBeNull();
    expect(step.state.timers.pollAt).toBe(T0 + MIN + 300 + 4_000);
    expect(step.state.settlement).toBeNull();
    // the deadline no longer applies
    const later = transition(step.state, { type: "timer", at: T0 + 45 * MIN }, cfg);
    expect(later.state.status).toBe("SUBMITTED");
  });

  it("modal_accepted never moves a task backwards that a poll already saw running", () => {
    const cfg = config();
    const pending = transition(modalTask(cfg), { type: "modal_requested", at: T0 + MIN }, cfg).state;
    const polled = transition(pending, upstream(T0 + MIN + 100, "IN_PROGRESS", 40), cfg).state;
    expect(polled.status).toBe("IN_PROGRESS");
    const step = transition(polled, { type: "modal_accepted", at: T0 + MIN + 200, step: "modal.1" }, cfg);
    expect(step.state.status).toBe("IN_PROGRESS");
    expect(step.state.progress).toBe(40);
    expect(step.changes).toEqual([]);
    expect(step.state.modalPending).toBe(false);
  });

  it("modal_accepted without a pending /modal, or after the end, changes nothing", () => {
    const state = modalTask();
    expect(
      transition(state, { type: "modal_accepted", at: T0 + MIN, step: "modal.1" }, config()).state,
    ).toEqual(state);
    const cancelled = transition(state, { type: "timer", at: T0 + 31 * MIN }, config()).state;
    const step = transition(
      cancelled,
      { type: "modal_accepted", at: T0 + 32 * MIN, step: "modal.1" },
      config(),
    );
    expect(step.state).toEqual(cancelled);
    expect(step.effects).toEqual([]);
  });

  it("modal_failed (clearly refused): back to MODAL, only the modal step is refunded, a new /modal may follow", () => {
    const pending = transition(modalTask(), { type: "modal_requested", at: T0 + MIN }, config()).state;
    expect(pending.charges.map((c) => c.step)).toEqual(["submit", "modal.1"]);
    const step = transition(
      pending,
      {
        type: "modal_failed",
        at: T0 + MIN + 5,
        step: "modal.1",
        reason: "modal refused upstream: x",
        ambiguous: false,
      },
      config(),
    );
    expect(step.state.status).toBe("MODAL");
    expect(step.state.modalPending).toBe(false);
    expect(step.state.settlement).toBeNull();
    expect(step.effects).toEqual([{ type: "refund_step", step: "modal.1", reason: "modal_refused" }]);
    expect(step.state.charges.find((c) => c.step === "modal.1")).toMatchObject({ refunded: true });
    // Until D1 records the refund, timers retry it.
    expect(transition(step.state, { type: "timer", at: T0 + 2 * MIN }, config()).effects).toContainEqual({
      type: "refund_step",
      step: "modal.1",
      reason: "modal_refused",
    });
    const recorded = transition(
      step.state,
      { type: "step_refund_recorded", at: T0 + MIN + 6, step: "modal.1" },
      config(),
    ).state;
    const again = transition(recorded, { type: "modal_requested", at: T0 + 2 * MIN }, config());
    expect(again.modalRefusal).toBeUndefined();
    expect(again.state.charges.map((c) => c.step)).toEqual(["submit", "modal.1", "modal.2"]);
    // The MODAL deadline still applies, and the cancellation refunds every step.
    const cancelled = transition(recorded, { type: "timer", at: T0 + 31 * MIN }, config());
    expect(cancelled.state.status).toBe("CANCEL");
    expect(cancelled.effects).toContainEqual({
      type: "settle",
      status: "CANCEL",
      outcome: "refund",
      reason: "modal_timeout",
      refundSteps: ["submit", "modal.1"],
    });
  });

  describe("an ambiguous modal_failed is decided by polling, not guessed", () => {
    const ambiguous = () => {
      const pending = transition(modalTask(), { type: "modal_requested", at: T0 + MIN }, config()).state;
      return transition(
        pending,
        { type: "modal_failed", at: T0 + MIN + 5, step: "modal.1", reason: "timeout", ambiguous: true },
        config(),
      );
    };

    it("waits: no refund, no cancellation, a second /modal is refused, polls come quickly", () => {
      const step = ambiguous();
      expect(step.effects).toEqual([]);
      expect(step.state.modalUnconfirmed).toEqual({
        step: "modal.1",
        since: T0 + MIN + 5,
        modalSightings: 0,
      });
      expect(step.state.timers.pollAt).toBe(T0 + MIN + 5 + POLL.modalConfirmPollMs);
      expect(
        transition(step.state, { type: "modal_requested", at: T0 + MIN + 10 }, config()).modalRefusal,
      ).toBe("modal_in_progress");
      // The MODAL deadline does not fire while the answer is outstanding.
      const late = transition(
        step.state,
        { type: "timer", at: step.state.timers.modalDeadlineAt! + 1 },
        config(),
      );
      expect(late.state.status).toBe("MODAL");
    });

    it("the upstream ran it (SUBMITTED): the modal charge is kept", () => {
      const step = transition(ambiguous().state, upstream(T0 + MIN + 3_000, "SUBMITTED", 20), config());
      expect(step.state.status).toBe("SUBMITTED");
      expect(step.state.modalUnconfirmed).toBeNull();
      expect(step.effects).toEqual([]);
      const done = transition(step.state, upstream(T0 + 3 * MIN, "SUCCESS", 100), config());
      expect(done.effects).toEqual([
        { type: "settle", status: "SUCCESS", outcome: "keep", reason: null, refundSteps: [] },
      ]);
    });

    it("still MODAL after the confirmation window: only the modal step is refunded", () => {
      const soon = transition(ambiguous().state, upstream(T0 + MIN + 3_000, "MODAL", 15), config());
      expect(soon.effects).toEqual([]);
      expect(soon.state.modalUnconfirmed).not.toBeNull();
      let state = soon.state;
      for (let i = 2; i < POLL.modalConfirmPolls; i++) {
        const again = transition(state, upstream(T0 + MIN + 3_000 * i, "MODAL", 15), config());
        expect(again.effects).toEqual([]);
        state = again.state;
      }
      const decided = transition(state, upstream(T0 + 2 * MIN, "MODAL", 15), config());
      expect(decided.effects).toEqual([{ type: "refund_step", step: "modal.1", reason: "modal_not_run" }]);
      expect(decided.state.modalUnconfirmed).toBeNull();
      expect(decided.state.status).toBe("MODAL");
      expect(
        transition(decided.state, { type: "modal_requested", at: T0 + 3 * MIN }, config()).modalRefusal,
      ).toBeUndefined();
    });

    it("CANCEL: the task ends and every step is refunded", () => {
      const step = transition(ambiguous().state, upstream(T0 + MIN + 3_000, "CANCEL", 15), config());
      expect(step.state.status).toBe("CANCEL");
      expect(step.effects).toEqual([
        {
          type: "settle",
          status: "CANCEL",
          outcome: "refund",
          reason: "upstream_cancel",
          refundSteps: ["submit", "modal.1"],
        },
      ]);
    });
  });

  it("modal_failed after the task already ended does not settle again", () => {
    const cancelled = transition(modalTask(), { type: "timer", at: T0 + 31 * MIN }, config()).state;
    const step = transition(
      cancelled,
      { type: "modal_failed", at: T0 + 32 * MIN, step: "modal.1", reason: "x", ambiguous: false },
      config(),
    );
    expect(step.state.status).toBe("CANCEL");
    expect(step.effects).toEqual([]);
  });

  it("modal_released (the charge was refused): back to waiting, and the deadline applies again", () => {
    const pending = transition(modalTask(), { type: "modal_requested", at: T0 + MIN }, config()).state;
    const released = transition(pending, { type: "modal_released", at: T0 + MIN + 5 }, config());
    expect(released.state.modalPending).toBe(false);
    expect(released.state.status).toBe("MODAL");
    expect(released.changes).toEqual([]);
    expect(released.effects).toEqual([]);
    const again = transition(released.state, { type: "modal_requested", at: T0 + 2 * MIN }, config());
    expect(again.modalRefusal).toBeUndefined();
    const timedOut = transition(released.state, { type: "timer", at: T0 + 31 * MIN }, config());
    expect(timedOut.state.status).toBe("CANCEL");
  });

  it("a stale MODAL from the upstream after /modal was accepted does not go back", () => {
    const cfg = config();
    let state = transition(modalTask(cfg), { type: "modal_requested", at: T0 + MIN }, cfg).state;
    const polled = transition(state, upstream(T0 + MIN + 50, "MODAL", 15), cfg);
    expect(polled.state.status).toBe("MODAL");
    expect(polled.state.modalPending).toBe(true);
    state = transition(
      polled.state,
      { type: "modal_accepted", at: T0 + MIN + 100, step: "modal.1" },
      cfg,
    ).state;
    const stale = transition(state, upstream(T0 + MIN + 4_000, "MODAL", 15), cfg);
    expect(stale.state.status).toBe("SUBMITTED");
    expect(stale.changes).toEqual([]);
    expect(stale.state.timers.modalDeadlineAt).toBeNull();
  });
});

describe("settlement_recorded", () => {
  it("marks the settlement recorded and stops the retry wake-up", () => {
    const done = run([accepted(), upstream(T0 + 9_000, "SUCCESS", 100)]).state;
    expect(nextWakeAt(done)).toBe(done.updatedAt + POLL.settlementRetryMs);
    const step = transition(done, { type: "settlement_recorded", at: T0 + 9_100 }, config());
    expect(step.state.settlement).toEqual({ outcome: "keep", reason: null, recorded: true });
    expect(step.changes).toEqual([]);
    expect(step.effects).toEqual([]);
    expect(nextWakeAt(step.state)).toBeNull();
  });

  it("is a no-op on a task without a settlement", () => {
    const state = runningTask();
    expect(transition(state, { type: "settlement_recorded", at: T0 + MIN }, config()).state).toEqual(state);
  });

  it("is idempotent", () => {
    const done = run([accepted(), upstream(T0 + 9_000, "FAILURE", 100)]).state;
    const once = transition(done, { type: "settlement_recorded", at: T0 + 9_100 }, config()).state;
    const twice = transition(once, { type: "settlement_recorded", at: T0 + 9_200 }, config()).state;
    expect(twice).toEqual(once);
  });
});

describe("pollDelay", () => {
  const base = (overrides: Partial<TaskState> = {}) => ({ ...initialState(T0, config()), ...overrides });

  it("long actions: 3–5 s with jitter", () => {
    expect(pollDelay(base(), config({ random: () => 0 }))).toBe(3_000);
    expect(pollDelay(base(), config({ random: () => 0.5 }))).toBe(4_000);
    expect(pollDelay(base(), config({ random: () => 0.999_999 }))).toBe(5_000);
    for (let i = 0; i < 1_000; i++) {
      const d = pollDelay(base({ status: "IN_PROGRESS" }), config({ random: Math.random }));
      expect(d).toBeGreaterThanOrEqual(3_000);
      expect(d).toBeLessThanOrEqual(5_000);
    }
    // "first" does not make a long action quick
    expect(pollDelay(base(), config({ random: () => 0 }), true)).toBe(3_000);
  });

  it("quick actions: first poll after 300 ms, then every second", () => {
    expect(pollDelay(base(), config({ quick: true }), true)).toBe(300);
    expect(pollDelay(base(), config({ quick: true }))).toBe(1_000);
    expect(pollDelay(base({ status: "IN_PROGRESS" }), config({ quick: true, random: () => 0.9 }))).toBe(
      1_000,
    );
  });

  it("quick polls are sooner than any long poll", () => {
    for (const r of [0, 0.3, 0.99]) {
      const quick = pollDelay(base(), config({ quick: true, random: () => r }));
      const long = pollDelay(base(), config({ random: () => r }));
      expect(quick).toBeLessThan(long);
    }
  });

  it("MODAL: every 30 s (a human has to call /modal)", () => {
    expect(pollDelay(base({ status: "MODAL" }), config())).toBe(30_000);
    expect(pollDelay(base({ status: "MODAL" }), config({ quick: true }), true)).toBe(30_000);
  });

  it("errors: exponential backoff takes precedence, capped, ±25%", () => {
    const r = (x: number) => config({ random: () => x });
    expect(pollDelay(base({ errorStreak: 1 }), r(0.5))).toBe(2_000);
    expect(pollDelay(base({ errorStreak: 3 }), r(0.5))).toBe(8_000);
    expect(pollDelay(base({ errorStreak: 7 }), r(0.5))).toBe(60_000);
    expect(pollDelay(base({ errorStreak: 7 }), r(0))).toBe(45_000);
    expect(pollDelay(base({ errorStreak: 7 }), r(0.999_999))).toBe(75_000);
    expect(pollDelay(base({ errorStreak: 2, status: "MODAL" }), r(0.5))).toBe(4_000);
    expect(pollDelay(base({ errorStreak: 1 }), config({ quick: true, random: () => 0.5 }), true)).toBe(2_000);
  });
});

describe("nextWakeAt", () => {
  it("a running task wakes for the earliest of poll, MODAL deadline and lifetime", () => {
    const s = initialState(T0, config());
    const at = (timers: Partial<TaskState["timers"]>, status: TaskStatus = "SUBMITTED") =>
      nextWakeAt({ ...s, status, timers: { ...s.timers, ...timers } });
    expect(at({ pollAt: T0 + 5, modalDeadlineAt: T0 + 50, lifetimeAt: T0 + 500 })).toBe(T0 + 5);
    expect(at({ pollAt: T0 + 60, modalDeadlineAt: T0 + 50, lifetimeAt: T0 + 500 }, "MODAL")).toBe(T0 + 50);
    expect(at({ pollAt: T0 + 600, modalDeadlineAt: null, lifetimeAt: T0 + 500 })).toBe(T0 + 500);
    expect(at({ pollAt: null, modalDeadlineAt: null, lifetimeAt: null })).toBeNull();
  });

  it("a terminal task only wakes for an unrecorded settlement or the late watch", () => {
    const done = run([accepted(), upstream(T0 + 9_000, "SUCCESS", 100)]).state;
    expect(nextWakeAt(done)).toBe(T0 + 9_000 + POLL.settlementRetryMs);
    const recorded = { ...done, settlement: { ...done.settlement!, recorded: true } };
    expect(nextWakeAt(recorded)).toBeNull();
    // stale timers of a finished task are ignored, except the late-watch poll
    expect(
      nextWakeAt({ ...recorded, timers: { ...recorded.timers, lifetimeAt: T0, modalDeadlineAt: T0 } }),
    ).toBeNull();
    expect(nextWakeAt({ ...recorded, timers: { ...recorded.timers, pollAt: T0 + HOUR } })).toBe(T0 + HOUR);
  });

  it("a task that left MODAL without our /modal forgets the deadline (no wake-up loop)", () => {
    const cfg = config();
    const left = transition(modalTask(cfg), upstream(T0 + MIN, "SUBMITTED", 20), cfg).state;
    expect(left.status).toBe("SUBMITTED");
    expect(left.timers.modalDeadlineAt).toBeNull();
    // even a stored record with a stale deadline wakes for the poll, not for the past deadline
    const stale = { ...left, timers: { ...left.timers, modalDeadlineAt: T0 } };
    expect(nextWakeAt(stale)).toBe(left.timers.pollAt);
  });

  it("a pending /modal past the deadline does not keep waking for that deadline", () => {
    const cfg = config();
    const pending = transition(modalTask(cfg), { type: "modal_requested", at: T0 + 29 * MIN }, cfg).state;
    const polled = transition(pending, upstream(T0 + 31 * MIN, "MODAL", 15), cfg).state;
    const wake = nextWakeAt(polled)!;
    expect(wake).toBeGreaterThan(T0 + 31 * MIN);
    expect(wake).toBe(polled.timers.pollAt);
    // once the /modal is released (refused charge), the deadline is back and due
    const released = transition(polled, { type: "modal_released", at: T0 + 31 * MIN + 1 }, cfg).state;
    expect(nextWakeAt(released)).toBe(released.timers.modalDeadlineAt);
    expect(transition(released, { type: "timer", at: T0 + 31 * MIN + 2 }, cfg).state.status).toBe("CANCEL");
  });

  it("never leaves a running task without a wake-up", () => {
    for (const state of [run([accepted()]).state, modalTask(), runningTask(), initialState(T0, config())]) {
      expect(isTerminal(state.status)).toBe(false);
      expect(nextWakeAt(state)).not.toBeNull();
    }
  });
});

describe("isFinal: nothing can change the state (and so its views) any more", () => {
  it("running and MODAL tasks are not final", () => {
    expect(isFinal(runningTask())).toBe(false);
    expect(isFinal(modalTask())).toBe(false);
  });

  it("a SUCCESS is final once its settlement is recorded, not before", () => {
    const cfg = config();
    const done = transition(runningTask(cfg), upstream(T0 + 9_000, "SUCCESS", 100), cfg).state;
    expect(done.settlement).toMatchObject({ outcome: "keep", recorded: false });
    expect(isFinal(done)).toBe(false);
    const recorded = transition(done, { type: "settlement_recorded", at: T0 + 9_001 }, cfg).state;
    expect(isFinal(recorded)).toBe(true);
  });

  it("a FAILURE the gateway gave up on stays open while its refund is unrecorded and while it watches the upstream late", () => {
    const cfg = config();
    const at = T0 + 2 * HOUR;
    const gaveUp = transition(runningTask(cfg), { type: "timer", at }, cfg).state;
    expect(isFinal(gaveUp)).toBe(false);
    const refunded = transition(gaveUp, { type: "settlement_recorded", at: at + 1 }, cfg).state;
    expect(isFinal(refunded)).toBe(false); // the late watch may still report what the upstream did
    const reported = transition(refunded, upstream(at + POLL.lateWatchMs, "SUCCESS", 100), cfg).state;
    expect(reported.lateUpstreamStatus).toBe("SUCCESS");
    expect(isFinal(reported)).toBe(true);
  });
});
