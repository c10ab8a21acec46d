import { defineConfig } from "vitest/config";

/** End-to-end tests in Node against a real `wrangler dev` stack (gateway + simulator). */
export default defineConfig({
  test: {
    include: ["e2e/**/*.e2e.ts"],
    globalSetup: ["./e2e/global-setup.ts"],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    fileParallelism: false,
  },
});
