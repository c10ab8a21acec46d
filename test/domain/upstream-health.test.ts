import { describe, expect, it } from "vitest";
import { type HealthPolicy, UpstreamHealth } from "../../src/domain/upstream-health";

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
