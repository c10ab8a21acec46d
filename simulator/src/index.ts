/**
 * mj-simulator: a Worker that behaves like the upstream Midjourney API
 * (see upstream-api.md) so the gateway can be developed and tested offline.
 * DEV/TEST ONLY: its /_sim control API has no authentication.
 */

import { app } from "./app";
import type { Env } from "./env";

export { SimulatorStore } from "./store";

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
