/**
 * Reads have their own per-key limit (429 read_rate_limited with Retry-After), separate
 * from submits: task queries, streams, account, usage and webhooks count; submits do not
 * (their exact per-minute limit lives in D1); the refusal reads and writes nothing in D1.
 */
import { env, SELF } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { forgetCachedKeys } from "../../src/middleware/auth";
import { forgetReadCounts, READ_LIMIT, READ_PERIOD_SECONDS } from "../../src/middleware/read-limit";
import { submit, tenantWithKey } from "../helpers";
import { expectError } from "../routes/route-helpers";
import { direct } from "./direct";

/** The in-isolate counter (no binding): its window starts at the first read, so counts are exact. */
const counter = { env: { READ_LIMITER: undefined } };

beforeEach(() => {
  forgetReadCounts();
  forgetCachedKeys();
});

describe("the per-key read limit", () => {
  it(`allows ${READ_LIMIT} reads a key per ${READ_PERIOD_SECONDS} s, then 429 read_rate_limited before any D1 work`, async () => {
    const t = await tenantWithKey(10_000_000);
    const other = await tenantWithKey();
    const paths = ["/v1/account", "/v1/usage", "/v1/webhooks"];
    for (let i = 0; i < READ_LIMIT; i++) {
      const res = await direct("GET", paths[i % paths.length]!, { ...counter, key: t.key });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
    }
    const refused = await direct("GET", "/v1/account", { ...counter, key: t.key });
    expectError(refused, 429, "read_rate_limited");
    expect(refused.body.error.type).toBe("rate_limit_error");
    const retry = Number(refused.headers.get("retry-after"));
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(retry).toBeLessThanOrEqual(READ_PERIOD_SECONDS);
    // Authentication reads the (cached) key; the refused read itself adds nothing.
    expect(refused.trips).toBeLessThanOrEqual(1);

    // Every read route counts: a task query and a stream opening are refused too.
    const task = await submit(t.key, "imagine", { prompt: "read limit" });
    expect(task.status, JSON.stringify(task.body)).toBe(200);
    const taskId = task.body.data[0].task_id as string;
    expectError(
      await direct("GET", `/v1/midjourney/${taskId}`, { ...counter, key: t.key }),
      429,
      "read_rate_limited",
    );
    expectError(
      await direct("GET", `/v1/tasks/${taskId}`, { ...counter, key: t.key }),
      429,
      "read_rate_limited",
    );
    expectError(
      await direct("GET", `/v1/midjourney/${taskId}/events`, { ...counter, key: t.key }),
      429,
      "read_rate_limited",
    );

    // Submits are not reads: they still pass (their limit is the key's rpm_limit, in D1).
    const submitted = await direct("POST", "/v1/midjourney/generations/imagine", {
      ...counter,
      key: t.key,
      body: { prompt: "still submits" },
    });
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(200);

    // Another key is unaffected.
    expect((await direct("GET", "/v1/account", { ...counter, key: other.key })).status).toBe(200);
  });

  it("counts with the READ_LIMITER binding when it is bound", { timeout: 120_000 }, async () => {
    expect(typeof env.READ_LIMITER?.limit).toBe("function");
    const t = await tenantWithKey();
    let last: Awaited<ReturnType<typeof direct>> | null = null;
    // The binding's window is fixed, not started by the first read: within two limits' worth.
    for (let i = 0; i < 2 * READ_LIMIT + 1; i++) {
      last = await direct("GET", "/v1/account", { key: t.key });
      if (last.status === 429) break;
      expect(last.status).toBe(200);
    }
    expectError(last!, 429, "read_rate_limited");
    expect(Number(last!.headers.get("retry-after"))).toBeGreaterThan(0);
    // The same key still submits.
    const res = await SELF.fetch("http://gateway.test/v1/midjourney/generations/imagine", {
      method: "POST",
      headers: { authorization: `Bearer ${t.key}`, "content-type": "application/json" },
      body: JSON.stringify({ prompt: "submit after reads" }),
    });
    expect(res.status).toBe(200);
    await res.body?.cancel();
  });
});
