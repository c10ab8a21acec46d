/**
 * Authentication is cheap to refuse: a bearer that cannot be a sub-key costs neither a
 * SHA-256 nor a D1 read; the key cache keeps real keys when flooded with random bearers;
 * failed authentication is throttled per client IP (429 too_many_auth_failures); and the
 * stream-token secret is required outside development.
 *
 * Requests go through the app with the D1 binding wrapped by the development round-trip
 * counter (src/db/round-trip-counter.ts), so "no D1 read" is measured, not assumed.
 */
import { env, SELF } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { countRoundTrips } from "../../src/db/round-trip-counter";
import { mintKey, SUB_KEY_PATTERN } from "../../src/domain/keys";
import {
  AUTH_FAILURE_LIMIT,
  AUTH_FAILURE_PERIOD_SECONDS,
  forgetAuthFailures,
  forgetCachedKeys,
  KEY_CACHE_LIMITS,
  principalForSecret,
} from "../../src/middleware/auth";
import { call, type TenantWithKey, tenantWithKey } from "../helpers";
import { expectError } from "../routes/route-helpers";
import { type Direct, direct } from "./direct";

const randomIp = () =>
  `2001:db8:${[...crypto.getRandomValues(new Uint16Array(3))].map((n) => n.toString(16)).join(":")}::1`;
/** A well-formed bearer no key has. */
const randomKey = () => mintKey().secret;

let t: TenantWithKey;
beforeEach(async () => {
  forgetCachedKeys();
  forgetAuthFailures();
  t ??= await tenantWithKey();
});
afterEach(() => vi.restoreAllMocks());

describe("cheap to refuse", () => {
  it("every minted key has the exact shape the middleware accepts", () => {
    for (let i = 0; i < 500; i++) expect(mintKey().secret).toMatch(SUB_KEY_PATTERN);
    expect(t.key).toMatch(SUB_KEY_PATTERN);
  });

  it("a bearer that cannot be a sub-key → 401 invalid_api_key with no SHA-256 and no D1 read", async () => {
    const digest = vi.spyOn(crypto.subtle, "digest");
    const malformed = [
      "garbage",
      `${t.key}x`,
      t.key.slice(0, -1),
      `sk-mjg-AAAAAAAA-${"A".repeat(42)}`,
      `sk-mjg-AAAAAAA!-${"A".repeat(43)}`,
      `sk-mjg-AAAAAAAAA${"A".repeat(43)}`,
      `SK-MJG-AAAAAAAA-${"A".repeat(43)}`,
      `sk-mjg-AAAAAAAA-${"A".repeat(42)}=`,
      "sk-sim-gateway-tests",
      "test-admin-token",
      `sk-mjg-${"A".repeat(10_000)}`,
    ];
    for (const bearer of malformed) {
      const res = await direct("GET", "/v1/account", { key: bearer });
      expect(res.status, bearer.slice(0, 60)).toBe(401);
      expect(res.body.error.code).toBe("invalid_api_key");
      expect(res.trips, bearer.slice(0, 60)).toBe(0);
    }
    // Submits too: refused before the body is parsed, priced or admitted.
    const submit = await direct("POST", "/v1/midjourney/generations/imagine", {
      key: "garbage",
      body: { prompt: "x" },
    });
    expect(submit.status).toBe(401);
    expect(submit.trips).toBe(0);
    expect(digest).not.toHaveBeenCalled();

    // The instruments do see a lookup: a well-formed unknown bearer costs one hash and one read.
    const unknown = await direct("GET", "/v1/account", { key: randomKey() });
    expect(unknown.body.error.code).toBe("invalid_api_key");
    expect(unknown.trips).toBe(1);
    expect(digest).toHaveBeenCalledTimes(1);
  });

  it("keeps the existing answers for well-formed keys (revoked, unknown) and missing bearers", async () => {
    expectError(await call("GET", "/v1/account", { key: randomKey() }), 401, "invalid_api_key");
    expectError(
      await call("GET", "/v1/account", { headers: { authorization: "Bearer" } }),
      401,
      "missing_api_key",
    );
    expect((await call("GET", "/v1/account", { key: t.key })).status).toBe(200);
  });
});

describe("the key cache", () => {
  it("keeps a valid key cached while flooded with more random bearers than the negative cache holds", async () => {
    const cacheMs = 60_000;
    const first = countRoundTrips(env.DB);
    expect((await principalForSecret(first.db, t.key, cacheMs))?.key.id).toBe(t.keyId);
    expect(first.count()).toBe(1);

    const flood = Array.from({ length: KEY_CACHE_LIMITS.unknown + 200 }, randomKey);
    for (let i = 0; i < flood.length; i += 50) {
      const batch = await Promise.all(
        flood.slice(i, i + 50).map((key) => principalForSecret(env.DB, key, cacheMs)),
      );
      expect(batch.every((principal) => principal === null)).toBe(true);
    }

    // The real key is still served from the cache: no D1 read.
    const after = countRoundTrips(env.DB);
    expect((await principalForSecret(after.db, t.key, cacheMs))?.key.id).toBe(t.keyId);
    expect(after.count()).toBe(0);

    // Unknown bearers are cached too, in their own bounded LRU: the newest are still there,
    // the oldest were evicted one by one (never everything at once).
    const newest = countRoundTrips(env.DB);
    for (const key of flood.slice(-100)) expect(await principalForSecret(newest.db, key, cacheMs)).toBeNull();
    expect(newest.count()).toBe(0);
    const oldest = countRoundTrips(env.DB);
    expect(await principalForSecret(oldest.db, flood[0]!, cacheMs)).toBeNull();
    expect(oldest.count()).toBe(1);
  });

  it("with KEY_CACHE_SECONDS=0 nothing is cached: every request reads D1", async () => {
    for (let i = 0; i < 3; i++) {
      const counter = countRoundTrips(env.DB);
      expect(await principalForSecret(counter.db, t.key, 0)).not.toBeNull();
      expect(counter.count()).toBe(1);
    }
  });

  it("an admin change to a key drops the cache, so a revoked key stops working at once", async () => {
    const other = await tenantWithKey(0);
    const cached = { env: { KEY_CACHE_SECONDS: "60" } };
    expect((await direct("GET", "/v1/account", { key: other.key, ...cached })).status).toBe(200);
    expect((await direct("GET", "/v1/account", { key: other.key, ...cached })).trips).toBeLessThan(4);
    const revoke = await direct("DELETE", `/admin/tenants/${other.tenantId}/keys/${other.keyId}`, {
      admin: true,
    });
    expect(revoke.status).toBe(200);
    expect((await direct("GET", "/v1/account", { key: other.key, ...cached })).body.error.code).toBe(
      "key_revoked",
    );
  });
});

/** Fails authentication from `ip` until the throttle answers; returns how many 401s came first. */
async function failUntilThrottled(ip: string, options: Direct = {}, fail: Direct = { key: "garbage" }) {
  let refused = 0;
  // The binding's windows are aligned to the clock: a run that straddles a boundary starts
  // counting again, so allow up to two windows' worth.
  for (let i = 0; i < 2 * AUTH_FAILURE_LIMIT + 1; i++) {
    const res = await direct("GET", "/v1/account", { ...options, ...fail, ip });
    if (res.status === 429) {
      expectThrottled(res);
      return refused;
    }
    expect(res.status, JSON.stringify(res.body)).toBe(401);
    refused++;
  }
  throw new Error(`no 429 after ${refused} failures`);
}

function expectThrottled(res: Awaited<ReturnType<typeof direct>>) {
  expect(res.status).toBe(429);
  expect(Object.keys(res.body)).toEqual(["error"]);
  expect(res.body.error.code).toBe("too_many_auth_failures");
  expect(res.body.error.type).toBe("rate_limit_error");
  const retry = Number(res.headers.get("retry-after"));
  expect(retry).toBeGreaterThanOrEqual(1);
  expect(retry).toBeLessThanOrEqual(AUTH_FAILURE_PERIOD_SECONDS);
  expect(res.trips).toBe(0);
}

describe("failed authentication is throttled per client IP", () => {
  for (const [label, limiter] of [
    ["the AUTH_FAILURE_LIMITER binding", undefined],
    ["the in-isolate counter (no binding)", { AUTH_FAILURE_LIMITER: undefined }],
  ] as const) {
    it(`with ${label}: after ${AUTH_FAILURE_LIMIT} failures the IP gets 429, even with a valid key, before any D1 read`, async () => {
      if (!limiter) expect(typeof env.AUTH_FAILURE_LIMITER?.limit).toBe("function");
      const options: Direct = limiter ? { env: limiter } : {};
      const ip = randomIp();
      expect(await failUntilThrottled(ip, options)).toBeGreaterThanOrEqual(AUTH_FAILURE_LIMIT);

      // Blocked: a valid key from that IP too, refused without hashing or D1.
      const digest = vi.spyOn(crypto.subtle, "digest");
      expectThrottled(await direct("GET", "/v1/account", { ...options, key: t.key, ip }));
      expectThrottled(await direct("GET", "/v1/account", { ...options, key: randomKey(), ip }));
      expect(digest).not.toHaveBeenCalled();

      // Another IP, and a request without CF-Connecting-IP, are not affected.
      expect((await direct("GET", "/v1/account", { ...options, key: t.key, ip: randomIp() })).status).toBe(
        200,
      );
      expect((await direct("GET", "/v1/account", { ...options, key: t.key })).status).toBe(200);
    });
  }

  it("counts malformed, unknown, missing and admin failures alike; no IP header is never throttled", async () => {
    // The in-isolate counter: its window starts at the first failure, so the count is exact.
    const counter = { env: { AUTH_FAILURE_LIMITER: undefined } };
    const ip = randomIp();
    const kinds: Direct[] = [{ key: "garbage" }, { key: randomKey() }, { authorization: "" }];
    for (let i = 0; i < AUTH_FAILURE_LIMIT; i++) {
      const res = await direct("GET", "/v1/account", { ...counter, ...kinds[i % kinds.length], ip });
      expect(res.status).toBe(401);
    }
    expectThrottled(await direct("GET", "/admin/tenants", { ...counter, authorization: "Bearer wrong", ip }));
    // The operator from that address is refused too until the period ends.
    expectThrottled(await direct("GET", "/admin/tenants", { ...counter, admin: true, ip }));

    const adminIp = randomIp();
    expect(
      await failUntilThrottled(adminIp, {}, { authorization: "Bearer not-the-admin-token" }),
    ).toBeGreaterThanOrEqual(AUTH_FAILURE_LIMIT);

    for (let i = 0; i < AUTH_FAILURE_LIMIT + 5; i++) {
      expect((await direct("GET", "/v1/account", { key: "garbage" })).status).toBe(401);
    }
  });

  it("a key that is valid but refused (disabled: 403) is not an authentication failure", async () => {
    const disabled = await tenantWithKey(0);
    await call("PATCH", `/admin/tenants/${disabled.tenantId}/keys/${disabled.keyId}`, {
      admin: true,
      body: { status: "disabled" },
    });
    const ip = randomIp();
    for (let i = 0; i < AUTH_FAILURE_LIMIT + 5; i++) {
      const res = await direct("GET", "/v1/account", { key: disabled.key, ip });
      expect(res.body.error.code).toBe("key_disabled");
    }
  });

  it("is wired into the Worker: SELF answers 429 too_many_auth_failures with Retry-After", async () => {
    const ip = randomIp();
    let last: Awaited<ReturnType<typeof call>> | null = null;
    for (let i = 0; i < 2 * AUTH_FAILURE_LIMIT + 1; i++) {
      last = await call("GET", "/v1/account", { key: "garbage", headers: { "cf-connecting-ip": ip } });
      if (last.status === 429) break;
      expectError(last, 401, "invalid_api_key");
    }
    expectError(last!, 429, "too_many_auth_failures");
    expect(Number(last!.headers.get("retry-after"))).toBeGreaterThan(0);
    const blocked = await SELF.fetch("http://gateway.test/v1/account", {
      headers: { authorization: `Bearer ${t.key}`, "cf-connecting-ip": ip },
    });
    expect(blocked.status).toBe(429);
    await blocked.body?.cancel();
  });
});

describe("the stream-token secret", () => {
  const logLines = (spy: { mock: { calls: unknown[][] } }): any[] =>
    spy.mock.calls.map((args) => {
      try {
        return JSON.parse(String(args[0]));
      } catch {
        return { unparsed: String(args[0]) };
      }
    });

  it("outside development a missing STREAM_TOKEN_SECRET → 500 configuration_error and one log line naming it", async () => {
    const production = { env: { STREAM_TOKEN_SECRET: undefined, ENVIRONMENT: undefined } };
    const checks = [
      () => direct("POST", "/v1/stream-tokens", { key: t.key, body: {}, ...production }),
      () =>
        direct("POST", `/admin/tenants/${t.tenantId}/stream-tokens`, {
          admin: true,
          body: {},
          ...production,
        }),
      () => direct("GET", "/v1/events?token=v1.e30.AAAA", production),
      () =>
        direct("POST", "/v1/stream-tokens", {
          key: t.key,
          body: {},
          env: { STREAM_TOKEN_SECRET: "", ENVIRONMENT: "production" },
        }),
    ];
    for (const check of checks) {
      const log = vi.spyOn(console, "log").mockImplementation(() => {});
      const res = await check();
      const lines = logLines(log);
      log.mockRestore();
      expect(res.status, JSON.stringify(res.body)).toBe(500);
      expect(res.body.error.code).toBe("configuration_error");
      expect(res.body.error.message).toContain("STREAM_TOKEN_SECRET");
      expect(res.body).not.toHaveProperty("token");
      const config = lines.filter((line) => line.event === "configuration_error");
      expect(config).toHaveLength(1);
      expect(config[0].missing_secret).toBe("STREAM_TOKEN_SECRET");
      const all = JSON.stringify(lines);
      expect(all).not.toContain("test-admin-token");
      expect(all).not.toContain(t.key);
    }
  });

  it("other routes keep working without it", async () => {
    const res = await direct("GET", "/v1/account", {
      key: t.key,
      env: { STREAM_TOKEN_SECRET: undefined, ENVIRONMENT: undefined },
    });
    expect(res.status).toBe(200);
  });

  it("in development a missing secret is derived, and tokens work end to end", async () => {
    const development = { env: { STREAM_TOKEN_SECRET: undefined, ENVIRONMENT: "development" } };
    const minted = await direct("POST", "/v1/stream-tokens", { key: t.key, body: {}, ...development });
    expect(minted.status, JSON.stringify(minted.body)).toBe(201);
    const stream = await direct("GET", `/v1/events?token=${minted.body.token}`, development);
    expect(stream.status).toBe(200);
    // ...and such a token means nothing where a real secret is set.
    const elsewhere = await direct("GET", `/v1/events?token=${minted.body.token}`);
    expect(elsewhere.status).toBe(401);
    expect(elsewhere.body.error.code).toBe("stream_token_invalid");
  });
});
