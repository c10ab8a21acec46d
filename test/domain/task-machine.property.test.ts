import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type Effect,
  initialState,
  isTerminal,
  type MachineConfig,
  nextWakeAt,
  type Observation,
  POLL,
  type PublishedChange,
  pendingModalStep,
  pollDelay,
  STATUSES,
  type TaskState,
  type TaskStatus,
  transition,
} from "../../src/domain/task-machine";

/**
 * Property tests of the pure task machine over thousands of random observation sequences,
 * including duplicated (at-least-once) deliveries, backwards and terminal upstream reports,
 * timers that jump across the MODAL deadline and the lifetime, /modal races and settlement
 * writes that fail (or fail after committing) and are retried.
 */

const T0 = 1_760_000_000_000;
const MIN = 60_000;
const HOUR = 60 * MIN;
const RUNS = 3_000;

const RANK: Record<TaskStatus, number> = {
  NOT_START: 0,
  MODAL: 1,
  SUBMITTED: 2,
  IN_PROGRESS: 3,
  SUCCESS: 4,
  FAILURE: 4,
  CANCEL: 4,
};

/** Small deterministic PRNG so the machine's injected randomness stays reproducible. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

type EventSpec =
  | { t: "accepted"; modal: boolean }
  | { t: "rejected" }
  | { t: "upstream"; status: TaskStatus; progress: number; failReason: string | null; tag: number }
  | { t: "upstream_error" }
  | { t: "timer" }
  /** A timer exactly when the machine asked to be woken (what the Durable Object does). */
  | { t: "timer_due" }
  /** A /modal call; `admission` is what D1 says about its charge. */
  | { t: "modal"; admission: "ok" | "refused"; outcome: "accepted" | "failed" | "ambiguous" | "pending" }
  | { t: "modal_accepted" }
  | { t: "modal_failed" }
  | { t: "modal_released" }
  | { t: "settlement_recorded" };

interface Step {
  dt: number;
  repeat: number;
  event: EventSpec;
}

const dtArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 10_000 }) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 40 * MIN }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 3 * HOUR }) },
);

const eventArb: fc.Arbitrary<EventSpec> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ t: fc.constant("accepted" as const), modal: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ t: "rejected" as const }) },
  {
    weight: 12,
    arbitrary: fc.record({
      t: fc.constant("upstream" as const),
      status: fc.constantFrom(...STATUSES),
      progress: fc.oneof(
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: -50, max: 400 }),
        fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 12.5),
      ),
      failReason: fc.option(fc.constantFrom("Banned prompt", "Job failed", ""), { nil: null }),
      tag: fc.integer({ min: 0, max: 3 }),
    }),
  },
  { weight: 4, arbitrary: fc.constant({ t: "upstream_error" as const }) },
  { weight: 4, arbitrary: fc.constant({ t: "timer" as const }) },
  { weight: 6, arbitrary: fc.constant({ t: "timer_due" as const }) },
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant("modal" as const),
      admission: fc.constantFrom("ok" as const, "ok" as const, "refused" as const),
      outcome: fc.constantFrom(
        "accepted" as const,
        "failed" as const,
        "ambiguous" as const,
        "pending" as const,
      ),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ t: "modal_accepted" as const }) },
  { weight: 1, arbitrary: fc.constant({ t: "modal_failed" as const }) },
  { weight: 1, arbitrary: fc.constant({ t: "modal_released" as const }) },
  { weight: 2, arbitrary: fc.constant({ t: "settlement_recorded" as const }) },
);

const stepArb: fc.Arbitrary<Step> = fc.record({
  dt: dtArb,
  repeat: fc.oneof(
    { weight: 5, arbitrary: fc.constant(1) },
    { weight: 1, arbitrary: fc.integer({ min: 2, max: 3 }) },
  ),
  event: eventArb,
});

const scenarioArb = fc.record({
  inpaint: fc.boolean(),
  quick: fc.boolean(),
  chargeMicros: fc.integer({ min: 1, max: 500_000 }),
  modalMicros: fc.integer({ min: 1, max: 500_000 }),
  modalTimeoutMs: fc.constantFrom(30 * MIN, 5 * MIN, 3 * HOUR),
  maxLifetimeMs: fc.constantFrom(2 * HOUR, 20 * MIN, 1 * HOUR),
  lateWatchMs: fc.constantFrom(24 * HOUR, 10 * MIN, 0),
  seed: fc.integer(),
  /** How the settlement write goes: ok, fails before commit, fails after committing. */
  d1: fc.array(fc.constantFrom("ok", "ok", "ok", "lost", "committed_then_error"), {
    minLength: 1,
    maxLength: 8,
  }),
  steps: fc.array(stepArb, { minLength: 1, maxLength: 40 }),
});
type Scenario = typeof scenarioArb extends fc.Arbitrary<infer S> ? S : never;

/**
 * The money side as D1 does it: one charge row per step ('submit', 'modal.N'), each refunded
 * at most once and only while the task is unsettled; settlement guarded by settled_at.
 */
class LedgerModel {
  balance = 100_000_000;
  readonly rows: Array<{
    kind: "topup" | "charge" | "refund";
    amount: number;
    step?: string;
    reason?: string;
  }> = [{ kind: "topup", amount: 100_000_000 }];
  settled: { status: string; refund: boolean } | null = null;

  /** Admission: D1 refuses a second charge row for the same step (UNIQUE (task_id, step)). */
  charge(amount: number, step: string): boolean {
    if (this.settled) return false; // the cost trigger refuses a charge on a settled task
    if (amount <= 0) return true;
    if (this.rows.some((r) => r.kind === "charge" && r.step === step)) return false;
    this.balance -= amount;
    this.rows.push({ kind: "charge", amount: -amount, step });
    return true;
  }

  /** One step's refund: guarded by "charge not refunded yet" and "task not settled". */
  refundStep(step: string, reason?: string): void {
    if (this.settled) return;
    const charge = this.rows.find((r) => r.kind === "charge" && r.step === step);
    if (!charge || this.rows.some((r) => r.kind === "refund" && r.step === step)) return;
    this.balance += -charge.amount;
    this.rows.push({ kind: "refund", amount: -charge.amount, step, reason });
  }

  settle(effect: Extract<Effect, { type: "settle" }>): void {
    if (this.settled) return; // every statement is guarded by settled_at IS NULL
    if (effect.outcome === "refund") {
      for (const step of effect.refundSteps) this.refundStep(step, effect.reason ?? undefined);
    }
    this.settled = { status: effect.status, refund: effect.outcome === "refund" };
  }

  check(): void {
    const sum = this.rows.reduce((a, r) => a + r.amount, 0);
    if (sum !== this.balance) throw new Error(`ledger sum ${sum} != balance ${this.balance}`);
    const refunds = this.rows.filter((r) => r.kind === "refund");
    const charges = this.rows.filter((r) => r.kind === "charge");
    if (refunds.length > charges.length) throw new Error("more refunds than charges");
    for (const refund of refunds) {
      const same = refunds.filter((r) => r.step === refund.step);
      if (same.length > 1) throw new Error(`two refunds for step ${refund.step}`);
      const charge = charges.find((c) => c.step === refund.step);
      if (!charge || refund.amount !== -charge.amount) throw new Error("refund differs from its charge");
    }
  }

  /** Money the task cost the tenant in the end. */
  net(): number {
    return this.rows.filter((r) => r.kind !== "topup").reduce((a, r) => a + r.amount, 0);
  }

  refundedSteps(): string[] {
    return this.rows.filter((r) => r.kind === "refund").map((r) => r.step!);
  }
}

interface RunResult {
  state: TaskState;
  ledger: LedgerModel;
  settleEffects: Array<Extract<Effect, { type: "settle" }>>;
  published: PublishedChange[];
  lateReports: number;
  modalWentThrough: boolean;
}

function fail(message: string, detail?: unknown): never {
  throw new Error(`${message}${detail === undefined ? "" : `: ${JSON.stringify(detail)}`}`);
}

/**
 * Runs a scenario the way the Durable Object would, checking the step invariants after
 * every transition, then lets the task's own timers run (polls answered with errors)
 * until it has nothing left to do.
 */
function simulate(scenario: Scenario): RunResult {
  const config: MachineConfig = {
    quick: scenario.quick,
    modalTimeoutMs: scenario.modalTimeoutMs,
    maxLifetimeMs: scenario.maxLifetimeMs,
    lateWatchMs: scenario.lateWatchMs,
    random: mulberry32(scenario.seed),
  };
  const ledger = new LedgerModel();
  // Admission: an inpaint is free, anything else is charged before the task exists.
  ledger.charge(scenario.inpaint ? 0 : scenario.chargeMicros, "submit");
  let modalSteps = 0;
  let state = initialState(T0, config);
  let now = T0;
  let d1Calls = 0;
  const published: PublishedChange[] = [{ status: state.status, progress: state.progress }];
  const settleEffects: RunResult["settleEffects"] = [];
  let lateReports = 0;
  let modalWentThrough = false;

  const apply = (observation: Observation): ReturnType<typeof transition> => {
    const prev = state;
    const step = transition(prev, observation, config);
    const next = step.state;

    // Terminal is final.
    if (isTerminal(prev.status)) {
      if (next.status !== prev.status) fail("terminal status changed", [prev.status, next.status]);
      if (next.progress !== 100) fail("terminal progress changed");
      if (next.failReason !== prev.failReason) fail("fail reason changed after the end");
      if (next.finishedAt !== prev.finishedAt) fail("finishedAt changed");
      if (
        next.settlement?.outcome !== prev.settlement?.outcome ||
        next.settlement?.reason !== prev.settlement?.reason
      )
        fail("settlement decision changed", [prev.settlement, next.settlement]);
      if (step.changes.length) fail("published a change after the end", step.changes);
    }
    // A terminal task has a settlement decision and a running one has none.
    if (isTerminal(next.status) !== (next.settlement !== null)) fail("terminal ⇔ settlement broken", next);
    // Published changes only go forward, never repeat, stay in range.
    for (const change of step.changes) {
      const last = published.at(-1)!;
      if (RANK[change.status] < RANK[last.status]) fail("status went backwards", [last, change]);
      if (change.progress < last.progress) fail("progress went backwards", [last, change]);
      if (change.status === last.status && change.progress === last.progress)
        fail("duplicate change", change);
      if (!Number.isInteger(change.progress) || change.progress < 0 || change.progress > 100)
        fail("progress out of range", change);
      if ((change.progress === 100) !== isTerminal(change.status)) fail("100% iff terminal", change);
      published.push(change);
    }
    // What subscribers last saw is exactly the task's state.
    const seen = published.at(-1)!;
    if (seen.status !== next.status || seen.progress !== next.progress)
      fail("state differs from what was published", { seen, status: next.status, progress: next.progress });
    // Becoming terminal comes with its settle effect in the same step.
    if (!isTerminal(prev.status) && isTerminal(next.status)) {
      if (!step.effects.some((e) => e.type === "settle")) fail("terminal without a settle effect");
    }
    // The MODAL deadline never cancels a task whose /modal is being handled.
    if (
      next.settlement?.reason === "modal_timeout" &&
      prev.settlement === null &&
      (prev.modalPending || prev.modalUnconfirmed || prev.status !== "MODAL")
    ) {
      fail("modal_timeout while a /modal was pending or outside MODAL", {
        prev: prev.status,
        pending: prev.modalPending,
      });
    }
    // A running task always has a wake-up, never later than its lifetime.
    if (!isTerminal(next.status)) {
      const wake = nextWakeAt(next);
      if (wake === null) fail("running task without a wake-up");
      if (next.timers.lifetimeAt !== T0 + config.maxLifetimeMs) fail("lifetime timer moved");
      if (wake > next.timers.lifetimeAt!) fail("wake-up after the lifetime");
    }
    // A wake-up that is already due must find work to do, or the alarm would spin.
    {
      const wake = nextWakeAt(next);
      if (wake !== null && wake <= observation.at) {
        const probe = transition(next, { type: "timer", at: observation.at }, config);
        if (!probe.effects.length && !probe.changes.length) fail("due wake-up with nothing to do", next);
      }
    }
    // The lifetime is a hard limit.
    if (
      observation.type === "timer" &&
      prev.timers.lifetimeAt !== null &&
      observation.at >= prev.timers.lifetimeAt
    ) {
      if (!isTerminal(next.status)) fail("lifetime passed but task still running");
    }
    // Polls are asked for only when due; the next poll is scheduled sensibly.
    for (const effect of step.effects) {
      if (effect.type === "poll" && (prev.timers.pollAt === null || observation.at < prev.timers.pollAt))
        fail("poll asked before it was due");
    }
    if (
      !isTerminal(next.status) &&
      next.timers.pollAt !== null &&
      next.timers.pollAt !== prev.timers.pollAt
    ) {
      const delay = next.timers.pollAt - observation.at;
      if (delay < POLL.quickFirstMs || delay > POLL.backoffMaxMs * 1.25 || !Number.isInteger(delay))
        fail("poll delay out of range", delay);
      if (observation.type === "upstream_error" && delay < POLL.backoffBaseMs * 0.75)
        fail("no backoff", delay);
    }
    // Effects.
    for (const effect of step.effects) {
      if (effect.type === "settle") {
        if (!isTerminal(next.status)) fail("settle for a running task");
        if (effect.status !== next.status)
          fail("settle status differs from the task's", [effect, next.status]);
        if ((effect.outcome === "keep") !== (effect.status === "SUCCESS")) fail("keep iff SUCCESS", effect);
        if (effect.outcome !== next.settlement!.outcome || effect.reason !== next.settlement!.reason)
          fail("settle effect differs from the settlement", effect);
        settleEffects.push(effect);
        const d1 = scenario.d1[d1Calls++ % scenario.d1.length]!;
        if (d1 !== "lost") ledger.settle(effect);
        if (d1 === "ok") {
          state = next;
          apply({ type: "settlement_recorded", at: now });
        }
      } else if (effect.type === "refund_step") {
        if (effect.step === "submit") fail("a step refund of the submit charge", effect);
        const d1 = scenario.d1[d1Calls++ % scenario.d1.length]!;
        if (d1 !== "lost") ledger.refundStep(effect.step, effect.reason);
        if (d1 === "ok") {
          state = next;
          apply({ type: "step_refund_recorded", at: now, step: effect.step });
        }
      } else if (effect.type === "late_upstream_report") {
        lateReports++;
        if (next.settlement?.reason !== "upstream_timeout")
          fail("late report for a task we did not give up on");
        if (!isTerminal(effect.status)) fail("late report of a running status");
      }
    }
    ledger.check();
    if (state === prev) state = next; // not already advanced by a nested settlement_recorded
    return step;
  };

  const observationFor = (event: EventSpec): Observation | null => {
    switch (event.t) {
      case "accepted":
        return { type: "accepted", at: now, upstreamStatus: event.modal ? "modal" : "submitted" };
      case "rejected":
        return { type: "rejected", at: now, reason: "upstream refused the submit" };
      case "upstream":
        return {
          type: "upstream",
          at: now,
          status: event.status,
          progress: event.progress,
          failReason: event.failReason,
          result: { tag: event.tag },
        };
      case "upstream_error":
        return { type: "upstream_error", at: now, error: "server_error" };
      case "timer":
        return { type: "timer", at: now };
      case "timer_due": {
        const wake = nextWakeAt(state);
        if (wake !== null && wake > now) now = wake;
        return { type: "timer", at: now };
      }
      case "modal_accepted":
        return { type: "modal_accepted", at: now, step: `modal.${Math.max(1, modalSteps)}` };
      case "modal_failed":
        return {
          type: "modal_failed",
          at: now,
          step: `modal.${Math.max(1, modalSteps)}`,
          reason: "modal refused upstream",
          ambiguous: false,
        };
      case "modal_released":
        return { type: "modal_released", at: now };
      case "settlement_recorded":
        // a duplicate report, only ever after D1 really recorded the settlement
        return ledger.settled ? { type: "settlement_recorded", at: now } : null;
      case "modal":
        return null;
    }
  };

  for (const { dt, repeat, event } of scenario.steps) {
    now += dt;
    for (let r = 0; r < repeat; r++) {
      if (event.t === "modal") {
        // What TaskObject.modal does: ask the machine, charge in D1, forward, report back.
        const requested = apply({ type: "modal_requested", at: now });
        if (requested.modalRefusal !== undefined) continue;
        const step = pendingModalStep(requested.state)!;
        if (event.admission === "refused" || !ledger.charge(scenario.modalMicros, step)) {
          apply({ type: "modal_released", at: now });
          continue;
        }
        modalSteps++;
        if (event.outcome === "accepted") {
          modalWentThrough = true;
          apply({ type: "modal_accepted", at: now, step });
        } else if (event.outcome === "failed" || event.outcome === "ambiguous") {
          apply({
            type: "modal_failed",
            at: now,
            step,
            reason: "modal refused upstream",
            ambiguous: event.outcome === "ambiguous",
          });
        }
        // "pending": the answer never came back (the object was evicted mid-call)
        continue;
      }
      const observation = observationFor(event);
      if (observation) apply(observation);
    }
  }

  // Let the task's own timers run; the upstream never answers again.
  for (let i = 0; i < 2_000; i++) {
    const wake = nextWakeAt(state);
    if (wake === null) break;
    now = Math.max(now, wake);
    const before = state;
    apply({ type: "timer", at: now });
    if (state.timers.pollAt !== null && state.timers.pollAt <= now) {
      apply({ type: "upstream_error", at: now, error: "timeout" });
    }
    if (state === before && nextWakeAt(state) === wake) {
      // a settlement write that keeps failing: let the next write through
      scenario.d1 = ["ok"];
    }
    if (i === 1_999) fail("task never went quiet", state);
  }
  return { state, ledger, settleEffects, published, lateReports, modalWentThrough };
}

const check = (scenario: Scenario) => {
  const result = simulate(structuredClone(scenario));
  const { state, ledger, settleEffects } = result;
  // Every task ends, is settled, and D1 knows it.
  expect(isTerminal(state.status)).toBe(true);
  expect(state.settlement?.recorded).toBe(true);
  expect(ledger.settled).not.toBeNull();
  // At most one settle decision: every settle effect of the task says the same thing.
  const decisions = new Set(settleEffects.map((e) => JSON.stringify(e)));
  expect(decisions.size).toBe(1);
  const [decision] = settleEffects;
  expect(decision!.status).toBe(state.status);
  expect(ledger.settled!.status).toBe(state.status);
  // FAILURE/CANCEL give every step back; SUCCESS keeps the submit charge (a /modal step
  // the upstream refused or never ran may have been given back on its own).
  if (state.status === "SUCCESS") {
    expect(ledger.refundedSteps()).not.toContain("submit");
  } else {
    expect(ledger.net()).toBe(0);
  }
  ledger.check();
  expect(result.lateReports).toBeLessThanOrEqual(1);
  // A /modal that went through is never answered by the MODAL timeout.
  if (result.modalWentThrough) expect(state.settlement?.reason).not.toBe("modal_timeout");
};

describe("task machine properties", () => {
  it("random observation sequences keep every invariant (terminal final, forward-only, one settle decision, money)", () => {
    fc.assert(fc.property(scenarioArb, check), { numRuns: RUNS });
  });

  it("sequences that start like real tasks (accepted first) keep every invariant", () => {
    const realistic = scenarioArb.chain((s) =>
      fc.tuple(fc.boolean(), fc.array(stepArb, { minLength: 1, maxLength: 40 })).map(([modal, steps]) => ({
        ...s,
        inpaint: modal,
        steps: [{ dt: 200, repeat: 1, event: { t: "accepted" as const, modal } }, ...steps],
      })),
    );
    fc.assert(fc.property(realistic, check), { numRuns: RUNS });
  });

  it("a MODAL task with a pending /modal is never cancelled by the deadline", () => {
    const arb = fc.record({
      requestAfter: fc.integer({ min: 0, max: 30 * MIN - 1 }),
      timers: fc.array(fc.integer({ min: 0, max: 10 * HOUR }), { minLength: 1, maxLength: 20 }),
      observations: fc.array(
        fc.record({
          status: fc.constantFrom<TaskStatus>("NOT_START", "MODAL", "SUBMITTED"),
          at: fc.integer({ min: 0, max: 2 * HOUR - 1 }),
        }),
        { maxLength: 5 },
      ),
      seed: fc.integer(),
    });
    fc.assert(
      fc.property(arb, ({ requestAfter, timers, observations, seed }) => {
        const config: MachineConfig = {
          quick: false,
          modalTimeoutMs: 30 * MIN,
          maxLifetimeMs: 2 * HOUR,
          lateWatchMs: 24 * HOUR,
          random: mulberry32(seed),
        };
        let state = transition(
          initialState(T0, config),
          { type: "accepted", at: T0, upstreamStatus: "modal" },
          config,
        ).state;
        const requested = transition(state, { type: "modal_requested", at: T0 + requestAfter }, config);
        expect(requested.modalRefusal).toBeUndefined();
        state = requested.state;
        const events: Observation[] = [
          ...timers.map((t): Observation => ({ type: "timer", at: T0 + 30 * MIN + t })),
          ...observations.map(
            (o): Observation => ({
              type: "upstream",
              at: T0 + o.at,
              status: o.status,
              progress: 15,
              failReason: null,
              result: {},
            }),
          ),
        ].sort((a, b) => a.at - b.at);
        for (const event of events) {
          state = transition(state, event, config).state;
          expect(state.status).not.toBe("CANCEL");
          expect(state.settlement?.reason ?? null).not.toBe("modal_timeout");
          // only the lifetime may end it (as FAILURE upstream_timeout, refunded)
          if (isTerminal(state.status)) expect(state.settlement?.reason).toBe("upstream_timeout");
        }
        // and once the /modal is accepted, the task is on its way
        const accepted = transition(
          state,
          { type: "modal_accepted", at: T0 + 10 * HOUR, step: "modal.1" },
          config,
        ).state;
        if (!isTerminal(state.status)) expect(accepted.status).not.toBe("MODAL");
      }),
      { numRuns: RUNS },
    );
  });

  it("pollDelay stays in its ranges for any randomness, status and error streak", () => {
    const arb = fc.record({
      r: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      status: fc.constantFrom(...STATUSES),
      streak: fc.integer({ min: 0, max: 5_000 }),
      quick: fc.boolean(),
      first: fc.boolean(),
    });
    fc.assert(
      fc.property(arb, ({ r, status, streak, quick, first }) => {
        const config: MachineConfig = {
          quick,
          modalTimeoutMs: 30 * MIN,
          maxLifetimeMs: 2 * HOUR,
          lateWatchMs: 0,
          random: () => r,
        };
        const state = { ...initialState(T0, config), status, errorStreak: streak };
        const delay = pollDelay(state, config, first);
        expect(Number.isInteger(delay)).toBe(true);
        if (streak > 0) {
          const backoff = Math.min(60_000, 2_000 * 2 ** (streak - 1));
          expect(delay).toBeGreaterThanOrEqual(Math.floor(backoff * 0.75));
          expect(delay).toBeLessThanOrEqual(Math.ceil(backoff * 1.25));
          // backoff never shrinks as errors pile up
          expect(pollDelay({ ...state, errorStreak: streak + 1 }, config, first)).toBeGreaterThanOrEqual(
            delay,
          );
        } else if (status === "MODAL") {
          expect(delay).toBe(30_000);
        } else if (quick) {
          expect(delay).toBe(first ? 300 : 1_000);
        } else {
          expect(delay).toBeGreaterThanOrEqual(3_000);
          expect(delay).toBeLessThanOrEqual(5_000);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("nextWakeAt is the earliest relevant timer", () => {
    const time = fc.option(fc.integer({ min: 0, max: 10 * HOUR }), { nil: null });
    const arb = fc.record({
      status: fc.constantFrom(...STATUSES),
      pollAt: time,
      modalDeadlineAt: time,
      lifetimeAt: time,
      settlement: fc.option(fc.boolean(), { nil: null }),
      updatedAt: fc.integer({ min: 0, max: 10 * HOUR }),
      pending: fc.boolean(),
    });
    fc.assert(
      fc.property(arb, (a) => {
        const config: MachineConfig = {
          quick: false,
          modalTimeoutMs: 1,
          maxLifetimeMs: 1,
          lateWatchMs: 0,
          random: () => 0,
        };
        const state: TaskState = {
          ...initialState(T0, config),
          status: a.status,
          updatedAt: a.updatedAt,
          modalPending: a.pending,
          settlement:
            a.settlement === null ? null : { outcome: "refund", reason: null, recorded: a.settlement },
          timers: {
            pollAt: a.pollAt,
            modalDeadlineAt: a.modalDeadlineAt,
            lifetimeAt: a.lifetimeAt,
            lateWatchUntil: null,
          },
        };
        const candidates = [
          ...(a.settlement === false ? [a.updatedAt + POLL.settlementRetryMs] : []),
          ...(isTerminal(a.status)
            ? [a.pollAt]
            : [a.pollAt, a.status === "MODAL" && !a.pending ? a.modalDeadlineAt : null, a.lifetimeAt]
          ).filter((t): t is number => t !== null),
        ];
        expect(nextWakeAt(state)).toBe(candidates.length ? Math.min(...candidates) : null);
      }),
      { numRuns: RUNS },
    );
  });
});
