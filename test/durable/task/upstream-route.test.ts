/**
 * What a failure means to routing: which ones another member may retry (clear refusals) and
 * what each tells the member's health; and a pool of one never refuses for its circuit.
 */
import { env } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { DEFAULT_HEALTH_POLICY } from "../../../src/domain/upstream-health";
import { failsOver, healthOutcome, replayableBody } from "../../../src/durable/task/upstream-route";
import { gateOf, routeFor } from "../../../src/services/upstream-pool";
import type { UpstreamFailure } from "../../../src/upstream/client";

const failures: Array<[UpstreamFailure, boolean]> = [
  [{ kind: "rate_limited", retryAfterSeconds: 3, message: "slow down" }, true],
  [{ kind: "auth", status: 401, message: "bad key" }, true],
  [{ kind: "server_error", status: 503, message: "down" }, true],
  [{ kind: "rejected", status: 400, message: "bad prompt" }, false],
  [{ kind: "not_found", message: "no such task" }, false],
  [{ kind: "timeout", message: "no answer" }, false],
  [{ kind: "network", message: "cut" }, false],
  [{ kind: "bad_response", status: 502, message: "html" }, false],
];

describe("failures and routing", () => {
  it.each(failures)("%o fails over: %s", (failure, expected) => {
    expect(failsOver(failure)).toBe(expected);
  });

  it("health: a 429 pauses for its Retry-After, the request's own faults say nothing, the rest are errors", () => {
    expect(healthOutcome(failures[0]![0])).toEqual({ kind: "rate_limited", retryAfterMs: 3000 });
    expect(healthOutcome(failures[3]![0])).toBeNull();
    expect(healthOutcome(failures[4]![0])).toBeNull();
    expect(healthOutcome(failures[5]![0])).toMatchObject({ kind: "error" });
  });

  it("a pool of one routes to its member even with the circuit open (there is nowhere else to go)", async () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    for (let i = 0; i < DEFAULT_HEALTH_POLICY.minSamples; i++) {
      await gateOf(env, "default").record("default", { kind: "error" });
    }
    log.mockRestore();
    expect((await gateOf(env, "default").status()).admitting).toBe(false);
    expect(await routeFor(env, "imagine", null)).toEqual([
      { id: "default", maxInflight: 100, ignoreCircuit: true },
    ]);
    expect(await routeFor(env, "upscale", "default")).toEqual([
      { id: "default", maxInflight: 100, ignoreCircuit: true },
    ]);
    const granted = await gateOf(env, "default").acquire("task_lone", {
      maxInflight: 100,
      queueBound: 0,
      queue: false,
      ignoreCircuit: true,
    });
    expect(granted).toEqual({ granted: true });
    await gateOf(env, "default").release("task_lone");
  });
});

describe("replayableBody", () => {
  const streamOf = (parts: string[]) =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        for (const part of parts) controller.enqueue(new TextEncoder().encode(part));
        controller.close();
      },
    });

  it("keeps a body within the limit, whole, to send again", async () => {
    const kept = await replayableBody(streamOf(['{"prompt":', '"a fox"}']), 64);
    expect(kept).toEqual({ payload: '{"prompt":"a fox"}', replayable: true });
    expect(await replayableBody("as text", 1)).toEqual({ payload: "as text", replayable: true });
  });

  it("past the limit gives back one stream of every byte, to be sent once", async () => {
    const parts = ["a".repeat(40), "b".repeat(40), "c".repeat(40)];
    const once = await replayableBody(streamOf(parts), 50);
    expect(once.replayable).toBe(false);
    expect(typeof once.payload).not.toBe("string");
    expect(await new Response(once.payload as ReadableStream).text()).toBe(parts.join(""));
  });
});
