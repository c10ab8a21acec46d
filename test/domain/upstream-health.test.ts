import { describe, expect, it } from "vitest";
import {
  type HealthPolicy,
  type HealthSnapshot,
  UpstreamHealth,
  WINDOW_SLICES,
} from "../../src/domain/upstream-health";

/** The circuit over an injected clock: window, threshold, cooldown, probes, Retry-After. */

const POLICY: HealthPolicy = {
  windowMs: 60_000,
  minSamples: 4,
  errorRate: 0.5,
  cooldownMs: 30_000,
  probes: 2,
  defaultRetryAfterMs: 5_000,
};

function harness(policy = POLICY) {
  const clock = { now: 1_000_000 };
  const health = new UpstreamHealth(policy, () => clock.now);
  return { clock, health };
}

const ok = { kind: "ok" } as const;
const error = { kind: "error", message: "upstream 502" } as const;

describe("upstream health", () => {
  it("stays closed below the minimum of samples, however many of them fail", () => {
    const { health } = harness();
    for (let i = 0; i < 3; i++) expect(health.record(error)).toEqual([]);
    expect(health.circuit()).toBe("closed");
    expect(health.admitting()).toBe(true);
  });

  it("opens at the error rate with one upstream.unhealthy, and admits nothing for the cooldown", () => {
    const { clock, health } = harness();
    health.record(ok);
    health.record(ok);
    health.record(error);
    const events = health.record(error);
    expect(events).toEqual([
      { type: "upstream.unhealthy", at: clock.now, errors: 2, samples: 4, lastError: "upstream 502" },
    ]);
    expect(health.circuit()).toBe("open");
    expect(health.admit()).toBe(false);
    expect(health.record(error)).toEqual([]); // late answers of requests already in flight
    clock.now += 29_999;
    expect(health.admitting()).toBe(false);
  });

  it("forgets outcomes older than the window", () => {
    const { clock, health } = harness();
    health.record(error);
    health.record(error);
    health.record(error);
    clock.now += 60_001;
    expect(health.record(error)).toEqual([]);
    expect(health.window()).toEqual({ samples: 1, errors: 1 });
  });

  it("half-open lets `probes` requests through; their successes close it with upstream.recovered", () => {
    const { clock, health } = harness();
    for (let i = 0; i < 4; i++) health.record(error);
    clock.now += 30_000;
    expect(health.circuit()).toBe("half_open");
    expect(health.admit()).toBe(true);
    expect(health.admit()).toBe(true);
    expect(health.admit()).toBe(false);
    expect(health.record(ok)).toEqual([]);
    expect(health.record(ok)).toEqual([{ type: "upstream.recovered", at: clock.now }]);
    expect(health.circuit()).toBe("closed");
    expect(health.window()).toEqual({ samples: 0, errors: 0 });
    expect(health.admit()).toBe(true);
  });

  it("a failed probe opens the circuit for another cooldown, without a second unhealthy event", () => {
    const { clock, health } = harness();
    for (let i = 0; i < 4; i++) health.record(error);
    clock.now += 30_000;
    expect(health.admit()).toBe(true);
    expect(health.record(error)).toEqual([]);
    expect(health.circuit()).toBe("open");
    clock.now += 29_999;
    expect(health.admitting()).toBe(false);
    clock.now += 1;
    expect(health.admit()).toBe(true);
  });

  it("probes that never answer stop holding their slots a cooldown after the last one started", () => {
    const { clock, health } = harness();
    for (let i = 0; i < 4; i++) health.record(error);
    clock.now += 30_000;
    expect(health.admit()).toBe(true);
    expect(health.record(ok)).toEqual([]);
    expect(health.admit()).toBe(true); // never answers
    expect(health.admit()).toBe(false);
    clock.now += 30_000;
    expect(health.admit()).toBe(true);
    expect(health.admit()).toBe(false);
    expect(health.record(ok)).toEqual([{ type: "upstream.recovered", at: clock.now }]);
  });

  it("honours a 429's Retry-After without counting it as an error", () => {
    const { clock, health } = harness();
    for (let i = 0; i < 10; i++)
      expect(health.record({ kind: "rate_limited", retryAfterMs: 7_000 })).toEqual([]);
    expect(health.circuit()).toBe("closed");
    expect(health.admitting()).toBe(false);
    clock.now += 7_000;
    expect(health.admitting()).toBe(true);
    health.record({ kind: "rate_limited" });
    expect(health.admitting()).toBe(false);
    clock.now += 5_000;
    expect(health.admitting()).toBe(true);
  });

  it("survives a snapshot round trip", () => {
    const { clock, health } = harness();
    for (let i = 0; i < 4; i++) health.record(error);
    const restored = new UpstreamHealth(POLICY, () => clock.now, health.snapshot());
    expect(restored.circuit()).toBe("open");
    clock.now += 30_000;
    expect(restored.admit()).toBe(true);
  });
});

describe("the stored window", () => {
  it("stays a bounded list of slices however many outcomes arrive, with exact counts", () => {
    const { clock, health } = harness({ ...POLICY, minSamples: 1_000_000 });
    for (let i = 0; i < 12_000; i++) {
      clock.now += 5; // 200 outcomes a second for a minute
      health.record(i % 10 === 0 ? error : ok);
    }
    const stored = health.snapshot();
    expect(stored.slices.length).toBeLessThanOrEqual(WINDOW_SLICES + 1);
    const { samples, errors } = health.window();
    // One slice's worth may have left early (a slice counts from its start).
    expect(samples).toBeGreaterThanOrEqual(12_000 - 200);
    expect(samples).toBeLessThanOrEqual(12_000);
    expect(errors).toBe(Math.round(samples / 10));
    expect(JSON.stringify(stored).length).toBeLessThan(5_000);
  });

  it("reads a snapshot stored before slices (one entry per outcome) into the same counts", () => {
    const now = 5_000_000;
    const legacy = {
      outcomes: [
        { at: now - 70_000, ok: false }, // already out of the window
        { at: now - 2_500, ok: true },
        { at: now - 2_400, ok: false },
        { at: now - 100, ok: true },
      ],
      circuit: "closed",
      openUntil: 0,
      probesStarted: 0,
      lastProbeAt: 0,
      probeSuccesses: 0,
      pausedUntil: 0,
      lastError: "upstream 502",
    } as unknown as HealthSnapshot;
    const health = new UpstreamHealth(POLICY, () => now, legacy);
    expect(health.window()).toEqual({ samples: 3, errors: 1 });
    expect(health.snapshot()).not.toHaveProperty("outcomes");
  });
});
