import { createApp } from "./app";
import { runMaintenance } from "./db/maintenance";
import { countRoundTrips, type D1Usage, emptyUsage } from "./db/round-trip-counter";
import { countStorageRows, type StorageRows, settleStorageRows } from "./durable/storage-row-counter";
import { TaskObject as TaskObjectImpl } from "./durable/task-object";
import { TenantHub as TenantHubImpl } from "./durable/tenant-hub";
import { UpstreamGate as UpstreamGateImpl } from "./durable/upstream-gate";
import { configFrom, type Env } from "./env";
import { floorProbe } from "./floor-probe";
import { archiveSettledHistory } from "./services/archive";
import { chargeStorage } from "./services/asset-usage";
import { purgeExpiredAssets } from "./services/assets";
import { sweepOrphanCharges } from "./services/custody";
import { enableSpans, readSpans, span } from "./spans";

const app = createApp();

/**
 * Development only, for the benchmarks: D1 usage of the Durable Objects' own work (admission,
 * polls, settlement, webhooks), read at GET /_debug/d1, and the rows of their own SQLite
 * storage, read at GET /_debug/storage, summed per class in this isolate; and the submit's
 * named spans (src/spans.ts), read at GET /_debug/spans (`?reset=1` starts anew); and the
 * platform's floor under a submit and a query, at GET /_debug/floor (src/floor-probe.ts). Outside
 * development the objects get the binding and their storage untouched, and no span is kept.
 */
const objectD1Usage: Record<string, D1Usage> = { TaskObject: emptyUsage(), TenantHub: emptyUsage() };
const objectStorageRows: Record<string, StorageRows> = {
  TaskObject: { rowsRead: 0, rowsWritten: 0 },
  TenantHub: { rowsRead: 0, rowsWritten: 0 },
  UpstreamGate: { rowsRead: 0, rowsWritten: 0 },
};
function countedInDevelopment(ctx: DurableObjectState, env: Env, className: string): Env {
  if (env.ENVIRONMENT !== "development") return env;
  enableSpans();
  countStorageRows(ctx.storage, objectStorageRows[className]!);
  return countedEnvOf(env, className);
}

/**
 * One counted env per class and isolate, as the runtime gives every object the same env:
 * a fresh one per object would miss `configFrom`'s cache and parse the configuration again.
 */
const countedEnvs = new WeakMap<Env, Map<string, Env>>();
function countedEnvOf(env: Env, className: string): Env {
  const d1Usage = objectD1Usage[className];
  if (!d1Usage) return env;
  const byClass = countedEnvs.get(env) ?? new Map<string, Env>();
  countedEnvs.set(env, byClass);
  let counted = byClass.get(className);
  if (!counted) {
    counted = { ...env, DB: countRoundTrips(env.DB, d1Usage).db };
    byClass.set(className, counted);
  }
  return counted;
}

export class TaskObject extends TaskObjectImpl {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, countedInDevelopment(ctx, env, "TaskObject"));
  }
}

export class TenantHub extends TenantHubImpl {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, countedInDevelopment(ctx, env, "TenantHub"));
  }
}

export class UpstreamGate extends UpstreamGateImpl {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, countedInDevelopment(ctx, env, "UpstreamGate"));
  }
}

export default {
  async fetch(request, env, ctx) {
    if (env.ENVIRONMENT === "development") return measuredInDevelopment(request, env, ctx);
    return app.fetch(request, env, ctx);
  },
  async scheduled(_controller, env, ctx) {
    const now = Date.now();
    ctx.waitUntil(
      Promise.all([
        runMaintenance(env.DB, now, { webhookRetentionMs: configFrom(env).webhookRetentionMs }),
        sweepOrphanCharges(env, now),
        purgeExpiredAssets(env, now),
        archiveSettledHistory(env, now),
        chargeStorage(env.DB, now),
      ]),
    );
  },
} satisfies ExportedHandler<Env>;

/** Development only: the debug readings, and each request measured as the bench reads it. */
async function measuredInDevelopment(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
  const url = new URL(request.url);
  const path = url.pathname;
  if (path === "/_debug/d1") return Response.json(objectD1Usage);
  if (path === "/_debug/storage") {
    settleStorageRows();
    return Response.json(objectStorageRows);
  }
  if (path === "/_debug/spans") return Response.json(readSpans(url.searchParams.has("reset")));
  if (path === "/_debug/floor") return floorProbe(request, env);
  if (request.headers.has("x-debug-d1")) {
    const counter = countRoundTrips(env.DB);
    const response = await app.fetch(request, { ...env, DB: counter.db }, ctx);
    const counted = new Response(response.body, response);
    counted.headers.set("x-d1-round-trips", String(counter.count()));
    counted.headers.set("x-d1-rows-read", String(counter.usage.rowsRead));
    counted.headers.set("x-d1-rows-written", String(counter.usage.rowsWritten));
    return counted;
  }
  enableSpans();
  // The Worker's own share of the requests the bench compares: a submit and the trivial route.
  const name =
    path === "/health"
      ? "worker.health"
      : request.method === "POST" && path.startsWith("/v1/midjourney/generations")
        ? "worker.submit"
        : null;
  return name ? span(name, async () => app.fetch(request, env, ctx)) : app.fetch(request, env, ctx);
}
