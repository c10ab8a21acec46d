// The two stacks the benchmark compares, each the gateway plus the upstream simulator on 127.0.0.1:
//
// - "lean": the Workers as `wrangler deploy --dry-run` builds them, run through Miniflare's API
//   (the miniflare package wrangler itself depends on): one workerd process per Worker, no dev
//   proxy, no inspector, no file watcher. Closest to what the product costs.
// - "dev": `wrangler dev` as `npm start` runs it (dev proxy, inspector with its Network domain,
//   file watcher, request logging through wrangler): what a developer sees.
//
// Both use a fresh persistence directory with the D1 migrations applied by wrangler, so the D1
// database is an ordinary SQLite file the benchmark can measure and seed.
import { spawnSync } from "node:child_process";
import { createWriteStream, existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ROOT, waitFor, wranglerDev } from "../scripts/stack.mjs";
import { descendants, sleep } from "./support.mjs";

const WRANGLER = join(ROOT, "node_modules", ".bin", "wrangler");
/** wrangler's own miniflare (4.x); the top-level one is vitest-pool-workers' 5.x alpha. */
const MINIFLARE = join(
  ROOT,
  "node_modules",
  "wrangler",
  "node_modules",
  "miniflare",
  "dist",
  "src",
  "index.js",
);
/**
 * A Worker's bindings as Miniflare takes them, read from its wrangler.toml by wrangler's own
 * API: the lean stack binds exactly what `wrangler dev` and a deploy would (vars, D1, R2,
 * Durable Objects, rate limits), with no second list to keep in step.
 */
const BOUND_OPTIONS = [
  "compatibilityDate",
  "compatibilityFlags",
  "bindings",
  "d1Databases",
  "r2Buckets",
  "durableObjects",
  "ratelimits",
];

async function workerOptionsFrom(config) {
  const { unstable_getMiniflareWorkerOptions } = await import("wrangler");
  const { workerOptions } = unstable_getMiniflareWorkerOptions(join(ROOT, config), undefined, {});
  return Object.fromEntries(BOUND_OPTIONS.map((name) => [name, workerOptions[name]]));
}
/** Hosted results in both stacks (the asset phase): a throwaway secret, the gateway's own origin. */
const ASSET_SECRET = "bench-asset-signing-secret";
/** Seals the keys of upstreams the bench adds (the routing phase); any value, per run. */
const UPSTREAM_KEY_SECRET = `bench-upstream-key-secret-${process.pid}`;

function wrangler(args, timeoutMs = 120_000) {
  const result = spawnSync(WRANGLER, args, {
    cwd: ROOT,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
    encoding: "utf8",
    timeout: timeoutMs,
  });
  if (result.status !== 0)
    throw new Error(`wrangler ${args.join(" ")} failed:\n${result.stdout}${result.stderr}`);
}

/** The local D1 SQLite file under a persistence directory (wrangler's and Miniflare's layout). */
export function d1File(persistTo) {
  const dir = join(persistTo, "v3", "d1", "miniflare-D1DatabaseObject");
  if (!existsSync(dir)) return null;
  const file = readdirSync(dir).find((name) => /^[0-9a-f]{64}\.sqlite$/.test(name));
  return file ? join(dir, file) : null;
}

/** Runs SQL on a (stopped stack's) D1 file with the sqlite3 command-line shell. */
export function sqlite(file, sql, { json = false, timeoutMs = 600_000 } = {}) {
  const result = spawnSync("sqlite3", [...(json ? ["-json"] : []), file], {
    input: sql,
    encoding: "utf8",
    timeout: timeoutMs,
    maxBuffer: 64 * 2 ** 20,
  });
  if (result.status !== 0) throw new Error(`sqlite3 failed: ${result.stderr || result.error}`);
  return json ? JSON.parse(result.stdout || "[]") : result.stdout;
}

/** Fresh state with the migrations applied, folded into the main file (Miniflare ignores a left-over WAL). */
export function freshState(persistTo) {
  rmSync(persistTo, { recursive: true, force: true });
  wrangler(["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistTo]);
  sqlite(d1File(persistTo), "PRAGMA wal_checkpoint(TRUNCATE);");
}

/** Builds both Workers as they would be deployed (the gateway's build step runs its asset build). */
export function buildWorkers(outDir) {
  rmSync(outDir, { recursive: true, force: true });
  wrangler(["deploy", "--dry-run", "--outdir", join(outDir, "gateway")]);
  wrangler(["deploy", "--dry-run", "-c", "simulator/wrangler.toml", "--outdir", join(outDir, "simulator")]);
}

const workerdPidsNow = () =>
  new Set(
    descendants(process.pid)
      .filter((p) => /workerd/.test(p.cmd))
      .map((p) => p.pid),
  );

/** One Worker through Miniflare's API; returns its URL, its workerd pid and dispose(). */
async function miniflareWorker({ Miniflare, name, dir, port, persistTo, config, vars, inspectorPort }) {
  const reports = [];
  const options = await workerOptionsFrom(config);
  const before = workerdPidsNow();
  const mf = new Miniflare({
    host: "127.0.0.1",
    port,
    d1Persist: join(persistTo, "v3", "d1"),
    durableObjectsPersist: join(persistTo, "v3", "do"),
    r2Persist: join(persistTo, "v3", "r2"),
    // Worker logs (one line per request) go nowhere: production ships them off the hot path.
    // BENCH_WORKER_LOG=<file> keeps them there instead, for profiling.
    // The gateway's V8 inspector only when asked (the CPU phase's isolate pass, BENCH_INSPECTOR_PORT):
    // no proxy in front of it, no domain enabled until a client asks.
    ...(inspectorPort ? { inspectorPort } : {}),
    handleRuntimeStdio(stdout, stderr) {
      if (process.env.BENCH_WORKER_LOG) {
        const file = createWriteStream(process.env.BENCH_WORKER_LOG, { flags: "a" });
        stdout.pipe(file);
        stderr.pipe(file);
        return;
      }
      keepLines(stdout, reports);
      stderr.resume();
    },
    workers: [
      {
        name,
        modules: true,
        modulesRoot: dir,
        scriptPath: join(dir, "index.js"),
        ...options,
        bindings: { ...options.bindings, ...vars },
      },
    ],
  });
  const url = String(await mf.ready).replace(/\/$/, "");
  const pid = [...workerdPidsNow()].find((p) => !before.has(p)) ?? null;
  return { url, pid, reports, dispose: () => mf.dispose() };
}

/** Log events the bench reads back (the objects' own reports); every other line is dropped unparsed. */
const REPORTED = ["sse_broadcast", "asset_hosting_done"];

function keepLines(stream, into) {
  let partial = "";
  stream.on("data", (chunk) => {
    const text = partial + chunk;
    const lines = text.split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      if (!REPORTED.some((event) => line.includes(event))) continue;
      try {
        into.push(JSON.parse(line.slice(line.indexOf("{"))));
      } catch {}
    }
    if (partial.length > 1 << 16) partial = "";
  });
}

/** The lean stack on an existing state directory (see freshState). */
export async function startLean({
  buildDir,
  persistTo,
  port,
  simulatorPort,
  adminToken,
  timeScale = 0,
  inspectorPort = null,
}) {
  // BENCH_INSPECTOR_PORT=<port> opens the gateway's V8 inspector there, for ad hoc CPU profiles.
  const gatewayInspectorPort = Number(process.env.BENCH_INSPECTOR_PORT) || inspectorPort;
  const { Miniflare } = await import(MINIFLARE);
  const simulator = await miniflareWorker({
    Miniflare,
    name: "mj-simulator",
    dir: join(buildDir, "simulator"),
    port: simulatorPort,
    persistTo,
    config: "simulator/wrangler.toml",
    vars: { SIM_TIME_SCALE: String(timeScale) },
  });
  let gateway;
  try {
    gateway = await miniflareWorker({
      Miniflare,
      name: "mj-gateway",
      dir: join(buildDir, "gateway"),
      port,
      persistTo,
      config: "wrangler.toml",
      inspectorPort: gatewayInspectorPort,
      vars: {
        ENVIRONMENT: "development",
        ADMIN_TOKEN: adminToken,
        UPSTREAM_BASE_URL: simulator.url,
        UPSTREAM_API_KEY: "sk-sim-local",
        ASSET_SIGNING_SECRET: ASSET_SECRET,
        PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
        UPSTREAM_KEY_SECRET,
      },
    });
  } catch (error) {
    await simulator.dispose();
    throw error;
  }
  return {
    mode: "lean",
    gatewayUrl: gateway.url,
    simulatorUrl: simulator.url,
    /** The processes that run the gateway Worker and its objects, and the simulator. */
    gatewayPids: [gateway.pid].filter(Boolean),
    toolingPids: [],
    /** The gateway's V8 inspector (null when closed): the CPU phase samples its isolate there. */
    inspectorPort: gatewayInspectorPort,
    simulatorPids: [simulator.pid].filter(Boolean),
    /** The socket SSE subscribers connect to (the same: no proxy). */
    workerUrl: gateway.url,
    /** The gateway's log events named in REPORTED, parsed, in order. */
    reports: () => gateway.reports,
    stop: async () => {
      await gateway.dispose();
      await simulator.dispose();
    },
  };
}

/**
 * The `npm start` stack (scripts/stack.mjs's arguments, with the inspector ports inside the
 * benchmark's port range). `log` receives the servers' output.
 */
export async function startDev({
  persistTo,
  port,
  simulatorPort,
  adminToken,
  timeScale = 0,
  log = () => {},
}) {
  const reports = [];
  const simulator = wranglerDev(
    [
      "-c",
      "simulator/wrangler.toml",
      "--port",
      String(simulatorPort),
      "--inspector-port",
      String(simulatorPort + 2),
      "--var",
      `SIM_TIME_SCALE:${timeScale}`,
      "--persist-to",
      persistTo,
    ],
    (text) => log("simulator", text),
  );
  const gateway = wranglerDev(
    [
      "--port",
      String(port),
      "--inspector-port",
      String(port + 2),
      "--var",
      "ENVIRONMENT:development",
      "--var",
      `UPSTREAM_BASE_URL:http://127.0.0.1:${simulatorPort}`,
      "--var",
      "UPSTREAM_API_KEY:sk-sim-local",
      "--var",
      `ADMIN_TOKEN:${adminToken}`,
      "--var",
      `ASSET_SIGNING_SECRET:${ASSET_SECRET}`,
      "--var",
      `PUBLIC_BASE_URL:http://127.0.0.1:${port}`,
      "--var",
      `UPSTREAM_KEY_SECRET:${UPSTREAM_KEY_SECRET}`,
      "--persist-to",
      persistTo,
    ],
    (text) => {
      for (const line of text.split("\n")) {
        if (!REPORTED.some((event) => line.includes(event))) continue;
        try {
          reports.push(JSON.parse(line.slice(line.indexOf("{"))));
        } catch {}
      }
      log("gateway", text);
    },
  );
  const children = [simulator, gateway];
  const stop = async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
    const until = Date.now() + 15_000;
    while (Date.now() < until && children.some((c) => c.exitCode === null)) await sleep(200);
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  };
  try {
    await waitFor(`http://127.0.0.1:${simulatorPort}/_sim/stats`, 90_000, simulator);
    await waitFor(`http://127.0.0.1:${port}/health`, 90_000, gateway);
    await sleep(2_000); // wrangler finishes spawning its workerd processes
  } catch (error) {
    await stop();
    throw error;
  }
  const workerds = (child) => descendants(child.pid).filter((p) => /workerd\s+serve/.test(p.cmd));
  const gatewayWorkerds = workerds(gateway);
  const proxy = gatewayWorkerds.find((p) => p.cmd.includes(`entry=127.0.0.1:${port} `));
  const runtime = gatewayWorkerds.filter((p) => p !== proxy).map((p) => p.pid);
  return {
    mode: "dev",
    gatewayUrl: `http://127.0.0.1:${port}`,
    simulatorUrl: `http://127.0.0.1:${simulatorPort}`,
    gatewayPids: runtime,
    /** wrangler's node process and its dev-proxy workerd: local tooling on every request's path. */
    toolingPids: [gateway.pid, ...(proxy ? [proxy.pid] : [])],
    simulatorPids: [simulator.pid, ...workerds(simulator).map((p) => p.pid)],
    workerUrl: null,
    reports: () => reports,
    stop,
  };
}
