/**
 * The configuration is parsed once per env object with one schema: defaults live in
 * src/env.ts, and a missing secret is a 500 `configuration_error` at the first request with
 * one log line naming it, never a request sent upstream with "" as the key.
 */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { createApp } from "../../src/app";
import { ConfigurationError, configFrom, type Env } from "../../src/env";

const app = createApp();

async function requestWith(overrides: Partial<Env>, path = "/health") {
  const ctx = createExecutionContext();
  const log = vi.spyOn(console, "log").mockImplementation(() => {});
  const res = await app.fetch(new Request(`http://gateway.test${path}`), { ...env, ...overrides }, ctx);
  await waitOnExecutionContext(ctx);
  const lines = log.mock.calls.map((args) => JSON.parse(String(args[0])));
  log.mockRestore();
  return { res, body: (await res.json()) as any, lines };
}

describe("configuration", () => {
  it("defaults come from one place and the env object is parsed once", () => {
    const bare = {
      UPSTREAM_BASE_URL: "https://upstream.example//",
      UPSTREAM_API_KEY: "k",
      ADMIN_TOKEN: "a",
    } as Env;
    const config = configFrom(bare);
    expect(config).toEqual({
      upstreamBaseUrl: "https://upstream.example",
      upstreamApiKey: "k",
      upstreamTimeoutMs: 20_000,
      modalTimeoutMs: 1_800_000,
      maxLifetimeMs: 7_200_000,
      retentionMs: 259_200_000,
      keyCacheMs: 10_000,
      webhookRetentionMs: 30 * 86_400_000,
      archiveAfterMs: 90 * 86_400_000,
      upstreamQueueMax: 1000,
      upstreamQueueMaxPerTenant: 100,
      upstreamQueueMaxWaitMs: 600_000,
      moderation: {
        windowMs: 3_600_000,
        slowAfter: 3,
        refuseAfter: 5,
        slowIntervalMs: 30_000,
        cooldownMs: 900_000,
      },
    });
    expect(configFrom(bare)).toBe(config);
  });

  it("a bad number names its variable, never silently defaults", () => {
    const bad = { UPSTREAM_BASE_URL: "u", UPSTREAM_API_KEY: "k", ADMIN_TOKEN: "a", KEY_CACHE_SECONDS: "-1" };
    expect(() => configFrom(bad as Env)).toThrow(ConfigurationError);
    expect(() => configFrom(bad as Env)).toThrow(/KEY_CACHE_SECONDS/);
  });

  for (const secret of ["ADMIN_TOKEN", "UPSTREAM_API_KEY", "UPSTREAM_BASE_URL"] as const) {
    for (const missing of [undefined, "", "  "]) {
      it(`${secret}=${JSON.stringify(missing)} → 500 configuration_error at the first request, one log line`, async () => {
        const { res, body, lines } = await requestWith({ [secret]: missing });
        expect(res.status).toBe(500);
        expect(body.error.code).toBe("configuration_error");
        expect(body.error.type).toBe("api_error");
        expect(body.error.message).toContain(secret);
        const logged = lines.filter((line) => line.event === "configuration_error");
        expect(logged).toHaveLength(1);
        expect(logged[0].variable).toBe(secret);
        expect(JSON.stringify(lines)).not.toContain(env.ADMIN_TOKEN);
        expect(JSON.stringify(lines)).not.toContain(env.UPSTREAM_API_KEY);
      });
    }
  }

  it("a configured gateway answers as usual", async () => {
    const { res } = await requestWith({});
    expect(res.status).toBe(200);
  });
});
