/**
 * An upstream's health: a circuit breaker over a sliding window of outcomes (submits and
 * polls). Pure, with an injected clock, so the Durable Object that owns an upstream's
 * counts can hold it and tests can step time.
 *
 * closed: every request goes through; when the window holds at least `minSamples` outcomes
 * and the share of errors reaches `errorRate`, the circuit opens (`upstream.unhealthy`).
 * open: nothing goes through until `cooldownMs` has passed; then half-open.
 * half-open: up to `probes` live requests go through; one error opens the circuit again
 * for another cooldown, `probes` successes close it (`upstream.recovered`) with a fresh window.
 * Probes that never report (their caller died) stop counting a cooldown after the last one
 * started, so a lost answer cannot hold the circuit half-open for ever.
 *
 * A 429 is not an error of the upstream but a request to wait: it pauses the upstream for
 * its Retry-After (or `defaultRetryAfterMs`) without counting against its health.
 */

export interface HealthPolicy {
  windowMs: number;
  /** Fewer outcomes than this in the window never open the circuit (one error is not a verdict). */
  minSamples: number;
  /** The share of errors (0–1] in the window that opens the circuit. */
  errorRate: number;
  cooldownMs: number;
  /** Live requests let through while half-open; this many successes close the circuit. */
  probes: number;
  defaultRetryAfterMs: number;
}

export const DEFAULT_HEALTH_POLICY: HealthPolicy = {
  windowMs: 60_000,
  minSamples: 10,
  errorRate: 0.5,
  cooldownMs: 30_000,
  probes: 3,
  defaultRetryAfterMs: 5_000,
};

/** Slices of the sliding window: its resolution (one second for the default minute). */
export const WINDOW_SLICES = 60;

export interface WindowSlice {
  /** Start of the slice (ms). */
  at: number;
  ok: number;
  errors: number;
}

export type CircuitState = "closed" | "open" | "half_open";

export type Outcome =
  | { kind: "ok" }
  | { kind: "error"; message?: string }
  | { kind: "rate_limited"; retryAfterMs?: number };

export type HealthTransition =
  | { type: "upstream.unhealthy"; at: number; errors: number; samples: number; lastError: string | null }
  | { type: "upstream.recovered"; at: number };

/** What a Durable Object stores to carry the state across restarts. */
export interface HealthSnapshot {
  /**
   * The window as counts per slice of `windowMs / WINDOW_SLICES` (oldest first): its size stays
   * bounded however busy the upstream is, so the gate that stores it on every outcome pays the
   * same at 1 or 1,000 requests a second.
   */
  slices: WindowSlice[];
  circuit: CircuitState;
  openUntil: number;
  probesStarted: number;
  /** When the last probe started: probes older than a cooldown are presumed lost. */
  lastProbeAt: number;
  probeSuccesses: number;
  pausedUntil: number;
  lastError: string | null;
}

export const initialHealth = (): HealthSnapshot => ({
  slices: [],
  circuit: "closed",
  openUntil: 0,
  probesStarted: 0,
  lastProbeAt: 0,
  probeSuccesses: 0,
  pausedUntil: 0,
  lastError: null,
});

/** A snapshot stored before the window was sliced kept each outcome: they are counted into slices. */
function upgraded(
  stored: HealthSnapshot & { outcomes?: { at: number; ok: boolean }[] },
  policy: HealthPolicy,
): HealthSnapshot {
  const { outcomes, ...rest } = stored;
  if (rest.slices) return rest;
  const health = new UpstreamHealth(policy, Date.now, { ...rest, slices: [] });
  for (const outcome of outcomes ?? []) health.countAt(outcome.at, outcome.ok);
  return health.snapshot();
}

export class UpstreamHealth {
  private s: HealthSnapshot;

  constructor(
    private readonly policy: HealthPolicy = DEFAULT_HEALTH_POLICY,
    private readonly clock: () => number = Date.now,
    snapshot: HealthSnapshot = initialHealth(),
  ) {
    this.s = upgraded(structuredClone(snapshot), policy);
  }

  snapshot(): HealthSnapshot {
    return structuredClone(this.s);
  }

  /** The circuit now (an open circuit whose cooldown has passed is half-open). */
  circuit(): CircuitState {
    if (this.s.circuit === "open" && this.clock() >= this.s.openUntil) return "half_open";
    return this.s.circuit;
  }

  /** Would a new request be let through now? No side effects (routing asks this of every member). */
  admitting(): boolean {
    if (this.clock() < this.s.pausedUntil) return false;
    const circuit = this.circuit();
    if (circuit === "closed") return true;
    return circuit === "half_open" && this.probesStartedNow() < this.policy.probes;
  }

  /** Lets one request through if `admitting()`; while half-open it takes a probe slot. */
  admit(): boolean {
    if (!this.admitting()) return false;
    if (this.circuit() === "half_open") {
      this.enterHalfOpen();
      this.s.probesStarted = this.probesStartedNow() + 1;
      this.s.lastProbeAt = this.clock();
    }
    return true;
  }

  /** Records what a request got back; returns the transitions it caused (none, or one). */
  record(outcome: Outcome): HealthTransition[] {
    const now = this.clock();
    if (outcome.kind === "rate_limited") {
      const wait = outcome.retryAfterMs ?? this.policy.defaultRetryAfterMs;
      this.s.pausedUntil = Math.max(this.s.pausedUntil, now + wait);
      return [];
    }
    const ok = outcome.kind === "ok";
    if (!ok) this.s.lastError = outcome.message ?? "error";
    const circuit = this.circuit();
    if (circuit === "half_open") return this.recordProbe(ok, now);
    if (circuit === "open") return []; // a request from before the circuit opened: already judged
    this.countAt(now, ok);
    this.prune(now);
    return this.tripIfUnhealthy(now);
  }

  /** Outcomes in the window now: for the operator's view. */
  window(): { samples: number; errors: number } {
    this.prune(this.clock());
    let samples = 0;
    let errors = 0;
    for (const slice of this.s.slices) {
      samples += slice.ok + slice.errors;
      errors += slice.errors;
    }
    return { samples, errors };
  }

  private recordProbe(ok: boolean, now: number): HealthTransition[] {
    this.enterHalfOpen();
    if (!ok) {
      this.open(now);
      return [];
    }
    this.s.probeSuccesses += 1;
    if (this.s.probeSuccesses < this.policy.probes) return [];
    this.s = { ...initialHealth(), pausedUntil: this.s.pausedUntil, lastError: this.s.lastError };
    return [{ type: "upstream.recovered", at: now }];
  }

  private tripIfUnhealthy(now: number): HealthTransition[] {
    const { samples, errors } = this.window();
    if (samples < this.policy.minSamples || errors / samples < this.policy.errorRate) return [];
    this.open(now);
    return [{ type: "upstream.unhealthy", at: now, errors, samples, lastError: this.s.lastError }];
  }

  private open(now: number) {
    this.s.circuit = "open";
    this.s.openUntil = now + this.policy.cooldownMs;
    this.s.probesStarted = 0;
    this.s.probeSuccesses = 0;
  }

  /** Makes the stored state say half-open once the cooldown has passed (it is derived until then). */
  private enterHalfOpen() {
    if (this.s.circuit === "open") this.s.circuit = "half_open";
  }

  private probesStartedNow() {
    if (this.s.circuit !== "half_open") return 0;
    const lost = this.clock() >= this.s.lastProbeAt + this.policy.cooldownMs;
    return lost ? this.s.probeSuccesses : this.s.probesStarted;
  }

  /** Counts one outcome at `now` into its slice (outcomes arrive in time order). */
  countAt(now: number, ok: boolean) {
    const sliceMs = Math.max(1, Math.floor(this.policy.windowMs / WINDOW_SLICES));
    const at = now - (now % sliceMs);
    let last = this.s.slices.at(-1);
    if (!last || last.at !== at) {
      last = { at, ok: 0, errors: 0 };
      this.s.slices.push(last);
    }
    if (ok) last.ok++;
    else last.errors++;
  }

  private prune(now: number) {
    const from = now - this.policy.windowMs;
    // A slice counts from its start: it leaves the window whole, up to one slice early.
    while (this.s.slices.length && this.s.slices[0]!.at <= from) this.s.slices.shift();
  }
}
