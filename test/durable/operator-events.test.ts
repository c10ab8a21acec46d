/**
 * Operator events: a gate's circuit opening sends upstream.unhealthy, and closing again
 * upstream.recovered, once per transition, as Standard Webhooks messages to
 * OPERATOR_WEBHOOK_URL (a simulator sink in vitest.config.ts); a failed delivery stays in the
 * gate's outbox and is retried on the schedule with the same webhook-id, then given up.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { DEFAULT_HEALTH_POLICY, UpstreamHealth } from "../../src/domain/upstream-health";
import { MAX_ATTEMPTS, RETRY_SCHEDULE_SECONDS } from "../../src/domain/webhooks";
import type { UpstreamGate } from "../../src/durable/upstream-gate";
import { ConfigurationError, configFrom, type Env } from "../../src/env";
import { failNext, newSink, type Received, received, settledReceived, waitReceived } from "../webhooks/hooks";

const SINK = "operator-events";
const SECRET = env.OPERATOR_WEBHOOK_SECRET!;

const gateFor = (upstreamId: string) => env.UPSTREAM_GATES.get(env.UPSTREAM_GATES.idFromName(upstreamId));
/** The gate instance itself (its RPC type hides the members a test reaches into). */
const inGate = <R>(stub: DurableObjectStub<UpstreamGate>, fn: (gate: UpstreamGate) => R | Promise<R>) =>
  runInDurableObject(stub, (instance) => fn(instance as unknown as UpstreamGate));
const about = (upstreamId: string) => (r: Received) => JSON.parse(r.body).data.upstream_id === upstreamId;

/** The Standard Webhooks check, written here from the spec rather than with the gateway's own code. */
async function expectStandardSignature(request: Received, secret: string) {
  const id = request.headers["webhook-id"]!;
  const timestamp = request.headers["webhook-timestamp"]!;
  expect(id).toMatch(/^msg_/);
  expect(Math.abs(Date.now() / 1000 - Number(timestamp))).toBeLessThan(60);
  const keyBytes = Uint8Array.from(atob(secret.replace(/^whsec_/, "")), (c) => c.charCodeAt(0));
  const key = await crypto.subtle.importKey("raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const mac = await crypto.subtle.sign(
    "HMAC",
    key,
    new TextEncoder().encode(`${id}.${timestamp}.${request.body}`),
  );
  const expected = `v1,${btoa(String.fromCharCode(...new Uint8Array(mac)))}`;
  expect(request.headers["webhook-signature"]!.split(" ")).toContain(expected);
}

async function trip(stub: DurableObjectStub<UpstreamGate>, upstreamId: string) {
  for (let i = 0; i < DEFAULT_HEALTH_POLICY.minSamples; i++) {
    await stub.record(upstreamId, { kind: "error", message: "HTTP 502" });
  }
}

describe("operator events", () => {
  it("open → one signed upstream.unhealthy; closed again → one upstream.recovered; both logged", async () => {
    const upstreamId = `ups_${crypto.randomUUID()}`;
    const stub = gateFor(upstreamId);
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    await trip(stub, upstreamId);
    // More failures while open are already judged: no second event.
    for (let i = 0; i < 5; i++) await stub.record(upstreamId, { kind: "error", message: "HTTP 502" });
    await runDurableObjectAlarm(stub);
    const [unhealthy] = await waitReceived(SINK, 1, about(upstreamId));
    await expectStandardSignature(unhealthy!, SECRET);
    expect(JSON.parse(unhealthy!.body)).toMatchObject({
      type: "upstream.unhealthy",
      data: { upstream_id: upstreamId, circuit: "open", window_errors: 10, last_error: "HTTP 502" },
    });

    // The cooldown passes (the gate's health clock moves on), probes succeed, the circuit closes.
    await inGate(stub, (gate) => {
      const inner = gate as unknown as { health: UpstreamHealth };
      const later = () => Date.now() + DEFAULT_HEALTH_POLICY.cooldownMs + 1;
      inner.health = new UpstreamHealth(DEFAULT_HEALTH_POLICY, later, inner.health.snapshot());
    });
    for (let i = 0; i < DEFAULT_HEALTH_POLICY.probes; i++) {
      expect(await stub.acquire(`probe${i}`, { maxInflight: 10, queueBound: 0 })).toEqual({ granted: true });
      await stub.record(upstreamId, { kind: "ok" });
    }
    await runDurableObjectAlarm(stub);
    const both = await waitReceived(SINK, 2, about(upstreamId));
    await expectStandardSignature(both[1]!, SECRET);
    expect(JSON.parse(both[1]!.body)).toMatchObject({
      type: "upstream.recovered",
      data: { upstream_id: upstreamId, circuit: "closed" },
    });
    expect(both[0]!.headers["webhook-id"]).not.toBe(both[1]!.headers["webhook-id"]);
    expect((await settledReceived(SINK)).filter(about(upstreamId))).toHaveLength(2);
    const logged = log.mock.calls.map(([line]) => JSON.parse(String(line)));
    log.mockRestore();
    expect(logged.filter((l) => l.upstream_id === upstreamId).map((l) => l.event)).toEqual([
      "upstream.unhealthy",
      "upstream.recovered",
    ]);
    expect(logged.filter((l) => l.event === "operator_webhook_delivered")).not.toHaveLength(0);
    expect(await inGate(stub, (gate) => gate.operatorEvents.pending())).toEqual([]);
  });

  it("a failed delivery stays stored and is retried when due, with the same webhook-id", async () => {
    const sink = newSink("operator");
    const target = { url: sink.url, secret: SECRET };
    await failNext(sink.name, 1);
    const stub = gateFor(`ups_${crypto.randomUUID()}`);
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    await inGate(stub, async (gate) => {
      const events = gate.operatorEvents;
      const now = Date.now();
      const retryAt = now + RETRY_SCHEDULE_SECONDS[0]! * 1000;
      events.enqueue("ups_retry", { type: "upstream.recovered", at: now }, now);
      expect(await events.deliverDue(now, target)).toBe(retryAt);
      expect(events.pending()).toMatchObject([{ attempts: 1, next_at: retryAt, last_error: "HTTP 503" }]);
      expect(await events.deliverDue(retryAt - 1, target)).toBe(retryAt); // not due yet: nothing sent
      expect(await events.deliverDue(retryAt, target)).toBeNull();
      expect(events.pending()).toEqual([]);
    });
    log.mockRestore();
    const got = await received(sink.name);
    expect(got).toHaveLength(2);
    expect(got[0]!.headers["webhook-id"]).toBe(got[1]!.headers["webhook-id"]);
    await expectStandardSignature(got[1]!, SECRET);
  });

  it("gives up after the schedule's last attempt, with a log line", async () => {
    const sink = newSink("operator-down");
    await failNext(sink.name, MAX_ATTEMPTS + 5);
    const stub = gateFor(`ups_${crypto.randomUUID()}`);
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    await inGate(stub, async (gate) => {
      const events = gate.operatorEvents;
      let at: number | null = events.enqueue("ups_down", { type: "upstream.recovered", at: 0 }, Date.now());
      while (at !== null) at = await events.deliverDue(at, { url: sink.url, secret: SECRET });
      expect(events.pending()).toEqual([]);
    });
    const events = log.mock.calls.map(([line]) => JSON.parse(String(line)).event);
    log.mockRestore();
    expect(await received(sink.name)).toHaveLength(MAX_ATTEMPTS);
    expect(events.filter((e) => e === "operator_webhook_failed")).toHaveLength(1);
  });

  it("a URL without its signing secret, or a private URL, is a misconfiguration naming the variable", () => {
    const broken = (vars: Partial<Env>) => {
      try {
        configFrom({ ...env, ...vars });
        return null;
      } catch (error) {
        return error instanceof ConfigurationError ? error.variable : String(error);
      }
    };
    expect(broken({ OPERATOR_WEBHOOK_SECRET: " " })).toBe("OPERATOR_WEBHOOK_SECRET");
    expect(broken({ OPERATOR_WEBHOOK_URL: "https://10.0.0.1/hooks" })).toBe("OPERATOR_WEBHOOK_URL");
    expect(broken({ OPERATOR_WEBHOOK_URL: "" })).toBeNull();
    expect(configFrom({ ...env, OPERATOR_WEBHOOK_URL: "" }).operatorWebhook).toBeUndefined();
  });
});
