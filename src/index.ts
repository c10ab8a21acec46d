import { createApp } from "./app";
import { runMaintenance } from "./db/maintenance";
import { countRoundTrips } from "./db/round-trip-counter";
import { configFrom, type Env } from "./env";
import { sweepOrphanCharges } from "./services/custody";

export { TaskObject } from "./durable/task-object";
export { TenantHub } from "./durable/tenant-hub";
export { UpstreamGate } from "./durable/upstream-gate";

const app = createApp();

export default {
  async fetch(request, env, ctx) {
    if (env.ENVIRONMENT === "development" && request.headers.has("x-debug-d1")) {
      const counter = countRoundTrips(env.DB);
      const response = await app.fetch(request, { ...env, DB: counter.db }, ctx);
      const counted = new Response(response.body, response);
      counted.headers.set("x-d1-round-trips", String(counter.count()));
      return counted;
    }
    return app.fetch(request, env, ctx);
  },
  async scheduled(_controller, env, ctx) {
    const now = Date.now();
    ctx.waitUntil(
      Promise.all([
        runMaintenance(env.DB, now, { webhookRetentionMs: configFrom(env).webhookRetentionMs }),
        sweepOrphanCharges(env, now),
      ]),
    );
  },
} satisfies ExportedHandler<Env>;
