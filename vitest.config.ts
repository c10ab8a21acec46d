import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { execFileSync } from "node:child_process";
import { buildSync } from "esbuild";
import { defineConfig } from "vitest/config";

/**
 * The real simulator Worker stands in for the upstream: bundled here, run as an auxiliary
 * worker, reached by the gateway's outbound fetch (and by tests through env.SIMULATOR).
 */
buildSync({
  entryPoints: ["simulator/src/index.ts"],
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  mainFields: ["module", "main"],
  conditions: ["workerd", "worker", "browser"],
  external: ["cloudflare:*"],
  outfile: ".build/simulator.mjs",
  logLevel: "error",
});

// The static assets the Worker serves (public/vendor/ is copied from node_modules).
execFileSync(process.execPath, ["scripts/build-assets.mjs"], { stdio: "inherit" });

export const TEST_UPSTREAM_KEY = "sk-sim-gateway-tests";

export default defineConfig(async () => {
  const migrations = await readD1Migrations("migrations");
  return {
    plugins: [
      cloudflareTest({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: {
            TEST_MIGRATIONS: migrations,
            UPSTREAM_BASE_URL: "http://upstream.test",
            UPSTREAM_API_KEY: TEST_UPSTREAM_KEY,
            ADMIN_TOKEN: "test-admin-token",
            // Required outside development (the tests run as production: no ENVIRONMENT).
            STREAM_TOKEN_SECRET: "test-stream-token-secret",
            UPSTREAM_KEY_SECRET: "test-upstream-key-secret",
            ASSET_SIGNING_SECRET: "test-asset-signing-secret",
            PUBLIC_BASE_URL: "http://gateway.test",
            // Every gate's operator events land in this simulator sink (test/durable/operator-events.test.ts).
            OPERATOR_WEBHOOK_URL: "https://hooks.test/_sim/webhooks/operator-events",
            OPERATOR_WEBHOOK_SECRET: "whsec_b3BlcmF0b3ItZXZlbnRzLXRlc3Qtc2VjcmV0",
            UPSTREAM_TIMEOUT_MS: "1500",
            KEY_CACHE_SECONDS: "0",
            // Small enough to reach in a test, large enough for the concurrency tests' queues.
            UPSTREAM_QUEUE_MAX: "150",
            UPSTREAM_QUEUE_MAX_PER_TENANT: "60",
          },
          serviceBindings: { SIMULATOR: "simulator" },
          outboundService: "simulator",
          workers: [
            {
              name: "simulator",
              modules: true,
              scriptPath: ".build/simulator.mjs",
              compatibilityDate: "2026-04-01",
              durableObjects: { STORE: { className: "SimulatorStore", useSQLite: true } },
              bindings: { SIM_TIME_SCALE: "0" },
            },
          ],
        },
      }),
    ],
    test: {
      setupFiles: ["./test/setup.ts"],
      include: ["test/**/*.test.ts"],
      testTimeout: 30_000,
      silent: "passed-only" as const,
    },
  };
});
