/** Webhook signing (Standard Webhooks), the retry schedule, payloads and URL rules: pure functions. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  eventTypeFor,
  MAX_ATTEMPTS,
  newEndpointId,
  newWebhookSecret,
  nextAttemptDelayMs,
  RETRY_SCHEDULE_SECONDS,
  signWebhook,
  verifyWebhook,
  webhookPayload,
  webhookUrlProblem,
} from "../../src/domain/webhooks";

// The Standard Webhooks specification's own example.
const SPEC = {
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
};

const headersOf = (signature: string, timestamp = SPEC.timestamp, id = SPEC.id) => ({
  id,
  timestamp: String(timestamp),
  signature,
});

describe("Standard Webhooks signatures", () => {
  it("matches the specification's test vector", async () => {
    expect(await signWebhook(SPEC.secret, SPEC.id, SPEC.timestamp, SPEC.body)).toBe(SPEC.signature);
  });

  it("verifies a genuine message within the tolerance and refuses a stale or future one", async () => {
    const ok = (now: number) => verifyWebhook(SPEC.secret, headersOf(SPEC.signature), SPEC.body, now);
    expect(await ok(SPEC.timestamp)).toBe(true);
    expect(await ok(SPEC.timestamp + 300)).toBe(true);
    expect(await ok(SPEC.timestamp - 300)).toBe(true);
    expect(await ok(SPEC.timestamp + 301)).toBe(false);
    expect(await ok(SPEC.timestamp - 301)).toBe(false);
  });

  it("refuses a changed body, id, timestamp, secret or signature", async () => {
    const now = SPEC.timestamp;
    const verify = (secret: string, headers: ReturnType<typeof headersOf>, body: string) =>
      verifyWebhook(secret, headers, body, now);
    expect(await verify(SPEC.secret, headersOf(SPEC.signature), '{"test": 2432232315}')).toBe(false);
    expect(await verify(SPEC.secret, headersOf(SPEC.signature), `${SPEC.body} `)).toBe(false);
    expect(await verify(SPEC.secret, headersOf(SPEC.signature, SPEC.timestamp, "msg_other"), SPEC.body)).toBe(
      false,
    );
    expect(await verify(SPEC.secret, headersOf(SPEC.signature, SPEC.timestamp + 1), SPEC.body)).toBe(false);
    expect(await verify(newWebhookSecret(), headersOf(SPEC.signature), SPEC.body)).toBe(false);
    expect(await verify(SPEC.secret, headersOf(SPEC.signature.replace("v1,", "v2,")), SPEC.body)).toBe(false);
    expect(await verify(SPEC.secret, headersOf("v1,AAAA"), SPEC.body)).toBe(false);
    expect(await verify(SPEC.secret, headersOf(""), SPEC.body)).toBe(false);
    expect(await verify(SPEC.secret, { ...headersOf(SPEC.signature), timestamp: "soon" }, SPEC.body)).toBe(
      false,
    );
  });

  it("accepts any of several space-separated signatures (key rotation)", async () => {
    const header = `v1,bm9wZQ== ${SPEC.signature}`;
    expect(await verifyWebhook(SPEC.secret, headersOf(header), SPEC.body, SPEC.timestamp)).toBe(true);
  });

  it("round-trips any body with a fresh secret, and any change to the body breaks it", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string(), fc.string({ minLength: 1 }), async (body, extra) => {
        const secret = newWebhookSecret();
        const now = 1_800_000_000;
        const signature = await signWebhook(secret, "msg_1", now, body);
        expect(await verifyWebhook(secret, headersOf(signature, now, "msg_1"), body, now)).toBe(true);
        expect(await verifyWebhook(secret, headersOf(signature, now, "msg_1"), body + extra, now)).toBe(
          false,
        );
      }),
      { numRuns: 50 },
    );
  });

  it("new secrets are whsec_ + base64 of 24 random bytes; endpoint ids are wh_ + ULID", () => {
    const secrets = new Set(Array.from({ length: 20 }, () => newWebhookSecret()));
    expect(secrets.size).toBe(20);
    for (const secret of secrets) {
      expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
      expect(atob(secret.slice(6))).toHaveLength(24);
    }
    expect(newEndpointId()).toMatch(/^wh_[0-9A-HJKMNP-TV-Z]{26}$/);
  });
});

describe("retry schedule", () => {
  it("retries with growing delays, 5 s first, for more than a day in all, then gives up", () => {
    const delays: number[] = [];
    for (let made = 1; ; made++) {
      const delay = nextAttemptDelayMs(made);
      if (delay === null) break;
      delays.push(delay);
    }
    expect(delays[0]).toBe(5_000);
    expect(delays.length).toBe(MAX_ATTEMPTS - 1);
    expect(delays).toEqual(RETRY_SCHEDULE_SECONDS.map((s) => s * 1000));
    // Exponential at the start: each of the first delays at least doubles the one before.
    for (let i = 1; i < 6; i++) expect(delays[i]!).toBeGreaterThanOrEqual(2 * delays[i - 1]!);
    const total = delays.reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(24 * 3600_000);
    expect(total).toBeLessThan(3 * 24 * 3600_000);
    expect(nextAttemptDelayMs(MAX_ATTEMPTS)).toBeNull();
    expect(nextAttemptDelayMs(MAX_ATTEMPTS + 5)).toBeNull();
  });
});

describe("payloads", () => {
  it("names the event by the task's status", () => {
    expect(eventTypeFor("SUCCESS")).toBe("task.succeeded");
    expect(eventTypeFor("FAILURE")).toBe("task.failed");
    expect(eventTypeFor("CANCEL")).toBe("task.cancelled");
    for (const status of ["NOT_START", "SUBMITTED", "IN_PROGRESS", "MODAL"]) {
      expect(eventTypeFor(status)).toBe("task.updated");
    }
  });

  it("is {type, timestamp, data} with the task object as data", () => {
    const task = { id: "task_x", status: "SUCCESS", progress: "100%" };
    const at = Date.UTC(2026, 0, 2, 3, 4, 5, 6);
    const payload = webhookPayload("task.succeeded", task, at);
    expect(JSON.parse(payload)).toEqual({
      type: "task.succeeded",
      timestamp: "2026-01-02T03:04:05.006Z",
      data: task,
    });
    expect(Object.keys(JSON.parse(payload))).toEqual(["type", "timestamp", "data"]);
  });
});

describe("webhookUrlProblem", () => {
  const production = (url: string) => webhookUrlProblem(url, false);
  const development = (url: string) => webhookUrlProblem(url, true);

  it("accepts public https URLs", () => {
    for (const url of [
      "https://hooks.example.com/mj",
      "https://hooks.example.com:8443/mj?x=1",
      "https://203.0.113.7/hook",
      "https://172.32.0.1/hook",
      "https://100.128.0.1/hook",
      "https://sub.domain.example.org",
    ]) {
      expect(production(url), url).toBeNull();
    }
  });

  it("refuses anything but https", () => {
    for (const url of ["http://hooks.example.com/mj", "ftp://hooks.example.com", "ws://hooks.example.com"]) {
      expect(production(url), url).toMatch(/https/);
    }
    expect(production("not a url")).toMatch(/absolute URL/);
    expect(production("/relative/path")).toMatch(/absolute URL/);
  });

  it("refuses credentials in the URL", () => {
    expect(production("https://user:pass@hooks.example.com/")).toMatch(/credentials/);
    expect(production("https://user@hooks.example.com/")).toMatch(/credentials/);
  });

  it("refuses private, loopback, link-local and internal addresses in production", () => {
    for (const url of [
      "https://localhost/hook",
      "https://LOCALHOST:8443/hook",
      "https://api.localhost/hook",
      "https://127.0.0.1/hook",
      "https://127.1.2.3/hook",
      "https://2130706433/hook", // 127.0.0.1 spelled as a number
      "https://0x7f000001/hook",
      "https://[::1]/hook",
      "https://[0:0:0:0:0:0:0:1]/hook",
      "https://[::ffff:127.0.0.1]/hook",
      "https://[::ffff:10.0.0.1]/hook",
      "https://10.1.2.3/hook",
      "https://172.16.0.1/hook",
      "https://172.31.255.255/hook",
      "https://192.168.1.1/hook",
      "https://169.254.169.254/latest/meta-data",
      "https://100.64.0.1/hook",
      "https://100.127.255.255/hook",
      "https://0.0.0.0/hook",
      "https://[fc00::1]/hook",
      "https://[fd12:3456::1]/hook",
      "https://[fe80::1]/hook",
      "https://printer.local/hook",
      "https://metadata.google.internal/hook",
      "https://intranet/hook",
      // A trailing dot names the same host.
      "https://localhost./hook",
      "https://api.localhost./hook",
      "https://metadata.google.internal./hook",
      "https://printer.local./hook",
    ]) {
      expect(production(url), url).toMatch(/private, loopback or link-local/);
    }
  });

  it("in development allows loopback over http or https, and nothing else that production refuses", () => {
    for (const url of [
      "http://localhost:8787/_sim/webhooks/a",
      "http://127.0.0.1:9000/hook",
      "https://localhost/hook",
      "http://[::1]:8080/hook",
    ]) {
      expect(development(url), url).toBeNull();
    }
    expect(development("ftp://localhost/hook")).toMatch(/http/);
    expect(development("http://hooks.example.com/hook")).toMatch(/https/);
    expect(development("https://10.0.0.1/hook")).toMatch(/private/);
    expect(development("https://192.168.0.10/hook")).toMatch(/private/);
  });
});
