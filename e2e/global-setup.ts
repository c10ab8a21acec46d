import { rmSync } from "node:fs";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
// @ts-expect-error plain ES module shared with `npm start`
import { ROOT, startStack } from "../scripts/stack.mjs";

declare module "vitest" {
  export interface ProvidedContext {
    gatewayUrl: string;
    simulatorUrl: string;
    adminToken: string;
  }
}

/** Starts the same stack as `npm start`, on its own ports and its own fresh local state. */
export default async function setup(project: TestProject) {
  const persistTo = join(ROOT, ".wrangler", "e2e-state");
  rmSync(persistTo, { recursive: true, force: true });
  const adminToken = `e2e-admin-${Date.now()}`;
  const stack = await startStack({
    port: Number(process.env.E2E_PORT ?? 8797),
    persistTo,
    adminToken,
    timeScale: 0.02,
    // Hosted results (e2e/video-seek.e2e.ts) sign their links, and pool members other than
    // `default` (e2e/pool.e2e.ts) keep their keys sealed: CI has no .dev.vars.
    extraVars: {
      ASSET_SIGNING_SECRET: `e2e-assets-${Date.now()}`,
      UPSTREAM_KEY_SECRET: `e2e-upstream-key-${Date.now()}`,
    },
    quiet: !process.env.E2E_VERBOSE,
  });
  project.provide("gatewayUrl", stack.gatewayUrl);
  project.provide("simulatorUrl", stack.simulatorUrl);
  project.provide("adminToken", adminToken);
  return () => stack.stop();
}
