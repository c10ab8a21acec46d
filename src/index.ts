import { createApp } from "./app";
import { runMaintenance } from "./db/maintenance";
import type { Env } from "./env";

export { TaskObject } from "./durable/task-object";
export { TenantHub } from "./durable/tenant-hub";

const app = createApp();

export default {
  fetch: app.fetch,
  async scheduled(_controller, env, ctx) {
    ctx.waitUntil(runMaintenance(env.DB, Date.now()));
  },
} satisfies ExportedHandler<Env>;
