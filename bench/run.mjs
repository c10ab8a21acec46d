// `npm run bench`: measures the gateway in two stacks side by side (bench/stacks.mjs): "lean"
// (the built Workers through Miniflare's API: no dev proxy, no inspector, state on tmpfs) and "dev" (`wrangler
// dev` as `npm start` runs it). Every figure is set against GET /health of the same Worker on
// the same stack; the simulator (the upstream) is measured directly for reference. Prints a
// report, writes bench/results/latest.json. Traffic goes to 127.0.0.1 only (ports 8987–8999);
// every loop is bounded in count and time; the servers started here are stopped at the end.
import { accessSync, constants, cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";
import { ROOT } from "../scripts/stack.mjs";
import { archiveBench, archiveReport } from "./archive.mjs";
import { costPer1000Tasks, PRICES } from "./prices.mjs";
import { buildWorkers, d1File, freshState, sqlite, startDev, startLean } from "./stacks.mjs";
import {
  call,
  closedLoop,
  cpuMs,
  histogram,
  isolateSampler,
  load1,
  monoMs,
  must,
  nowMs,
  openSubscriber,
  percentile,
  perSecond,
  round,
  sampleRss,
  sleep,
  summary,
  workerSocket,
} from "./support.mjs";

const setting = (name, fallback) => {
  const value = Number(process.env[name]);
  return Number.isFinite(value) && value > 0 ? value : fallback;
};

const CONFIG = {
  modes: (process.env.BENCH_MODES ?? "lean,dev").split(",").filter(Boolean),
  durationSeconds: setting("BENCH_DURATION_S", 10),
  connections: setting("BENCH_CONNECTIONS", 16),
  latencySamples: setting("BENCH_LATENCY_SAMPLES", 200),
  cpuRequests: setting("BENCH_CPU_REQUESTS", 600),
  queryWindows: setting("BENCH_QUERY_WINDOWS", 4),
  d1Tasks: setting("BENCH_D1_TASKS", 20),
  admissionConcurrency: setting("BENCH_ADMISSION_CONCURRENCY", 16),
  seedRows: setting("BENCH_SEED_ROWS", 3_000_000),
  subscribers: setting("BENCH_SSE_SUBSCRIBERS", 1000),
  assetTasks: setting("BENCH_ASSET_TASKS", 8),
  /** Assumed task life for Durable Object duration in the cost (polls keep the object active). */
  costTaskSeconds: setting("BENCH_COST_TASK_SECONDS", 60),
};
const PORTS = { lean: 8993, dev: 8987 }; // simulator on the next port; dev inspectors on +2
/** The lean stack on the seeded copy of the database (history phase), beside the lean one. */
const SEEDED_PORT = 8995;
/** The lean gateway's V8 inspector: it listens only during the CPU phase's isolate pass. */
const LEAN_INSPECTOR_PORT = 8997;
/** Alternating admission windows per database in the history phase. */
const HISTORY_ROUNDS = 4;
const HARD_LIMIT_MS = 25 * 60_000;
const SIM_KEY_GATEWAY = "sk-sim-local";
const SIM_KEY_DIRECT = "sk-sim-bench";
const BIG_BALANCE = 1_000_000_000_000;
const RUN_TAG = Date.now().toString(36);
/** Task reads are limited per key (READ_LIMITER: 1,200 a minute): reads rotate over a pool of keys. */
const READ_KEYS = 120;
// `npm run bench -- --only archive` or BENCH_ONLY=archive,d1: run only the named sections.
const onlyArg = process.argv.indexOf("--only");
const ONLY = (onlyArg > 0 ? (process.argv[onlyArg + 1] ?? "") : (process.env.BENCH_ONLY ?? ""))
  .split(",")
  .filter(Boolean);
/** The archive section needs no Worker: with --only archive no stack is started. */
const STACKS = !ONLY.length || ONLY.some((name) => name !== "archive");
/** Members the routing phase adds beside `default`, each the same simulator under its own key. */
const ROUTING_EXTRA_MEMBERS = 2;

/**
 * Where each stack keeps its local state. The lean stack's lives in memory (tmpfs) where the
 * machine has one: local Durable Object and D1 storage is one SQLite file per object, fsynced
 * on every write, and that disk wait (with its system CPU) is the local engine's, not the
 * product's: production objects do not write files on the Worker's machine. The dev stack
 * stays on disk, as `npm start` does. BENCH_LEAN_STATE=disk keeps the lean stack on disk too.
 */
function stateRoot(mode) {
  const repo = join(ROOT, ".wrangler");
  if (mode !== "lean" || process.env.BENCH_LEAN_STATE === "disk") return { dir: repo, kind: "disk" };
  try {
    accessSync(TMPFS, constants.W_OK);
    return { dir: join(TMPFS, "mj-gateway-bench"), kind: "tmpfs" };
  } catch {
    return { dir: repo, kind: "disk" };
  }
}
const TMPFS = "/dev/shm";

const log = (message) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);
const ratio = (a, b) => (a && b ? round(a / b, 2) : null);
const mean = (values) => (values.length ? values.reduce((a, b) => a + b, 0) / values.length : null);

const results = {
  started_at: new Date().toISOString(),
  provisional: "one run on a shared 2-core machine; figures are provisional",
  machine: { cpus: cpus().length, memory_gib: round(totalmem() / 2 ** 30, 1), node: process.version },
  config: CONFIG,
  load_average_1m: {},
  modes: {},
  notes: [],
};
const serverLog = [];
let current = null;

const watchdog = setTimeout(() => {
  log(`hard time limit of ${HARD_LIMIT_MS / 60_000} min reached; stopping`);
  (current?.stop() ?? Promise.resolve()).finally(() => process.exit(2));
}, HARD_LIMIT_MS);
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    log(`${signal}: stopping the servers`);
    (current?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------
// One stack's client

function client(stack, adminToken) {
  const G = stack.gatewayUrl;
  const S = stack.simulatorUrl;
  const c = { G, S, stack };
  c.newKey = async (tenantId) =>
    (
      await must(201, G, "POST", `/admin/tenants/${tenantId}/keys`, {
        auth: adminToken,
        body: { name: "bench", rpm_limit: 100_000, max_inflight: 100_000 },
      })
    ).key;
  c.tenantWithKey = async (name, balance) => {
    const tenant = await must(201, G, "POST", "/admin/tenants", { auth: adminToken, body: { name } });
    await must(200, G, "PATCH", `/admin/tenants/${tenant.id}`, {
      auth: adminToken,
      body: { max_inflight: 100_000 },
    });
    if (balance > 0)
      await must(201, G, "POST", `/admin/tenants/${tenant.id}/topups`, {
        auth: adminToken,
        body: { amount_micros: balance, reason: "bench" },
      });
    return { tenantId: tenant.id, key: await c.newKey(tenant.id) };
  };
  c.simConfig = (timeScale, key) =>
    must(200, S, "POST", "/_sim/config", { body: { time_scale: timeScale, key } });
  c.simPolls = async (key) => {
    const stats = await must(200, S, "GET", `/_sim/stats?key=${key}`);
    return Object.values(stats.queries_by_task ?? {}).reduce((a, b) => a + b, 0);
  };
  c.submit = async (base, key, prompt, debug = false) => {
    const r = await call(base, "POST", "/v1/midjourney/generations/imagine", {
      auth: key,
      body: { prompt },
      headers: debug ? { "x-debug-d1": "1" } : {},
    });
    if (r.status !== 200) throw new Error(`submit: ${r.status} ${r.text.slice(0, 300)}`);
    return { taskId: r.json.data[0].task_id, ms: r.ms, d1: requestD1(r.headers) };
  };
  c.query = async (base, key, taskId, debug = false) => {
    const r = await call(base, "GET", `/v1/midjourney/${taskId}`, {
      auth: key,
      headers: debug ? { "x-debug-d1": "1" } : {},
    });
    if (r.status !== 200) throw new Error(`query: ${r.status} ${r.text.slice(0, 300)}`);
    return { task: r.json, ms: r.ms, d1: requestD1(r.headers) };
  };
  /**
   * A task that keeps running (the simulator runs it 1,000× slower: up to 28 h) so that its
   * queries reach its object, until `end()` jumps the simulator's clock two days on: past the
   * task's end, within the simulator's three-day retention. It ends at its next poll.
   */
  c.runningTask = async (tenant) => {
    await c.simConfig(1_000, SIM_KEY_GATEWAY);
    const { taskId } = await c.submit(G, tenant.key, `bench running ${RUN_TAG}`);
    await c.simConfig(0, SIM_KEY_GATEWAY);
    const end = () =>
      must(200, S, "POST", "/_sim/clock", { body: { advance_ms: 2 * 86_400_000, key: SIM_KEY_GATEWAY } });
    return { taskId, end };
  };
  c.objectsD1 = () => must(200, G, "GET", "/_debug/d1");
  /** The objects' own SQLite rows read and written, per class (development only). */
  c.objectsStorage = () => must(200, G, "GET", "/_debug/storage");
  /** The submit's named spans since the last reset (development only); null when the stack has none. */
  c.spans = (reset) => must(200, G, "GET", `/_debug/spans${reset ? "?reset=1" : ""}`).catch(() => null);
  c.drain = async (tenantId, timeoutMs = 120_000) => {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      const tenant = await must(200, G, "GET", `/admin/tenants/${tenantId}`, { auth: adminToken }).catch(
        () => null,
      );
      if (tenant?.inflight === 0) return true;
      await sleep(500);
    }
    results.notes.push(`${stack.mode}: drain of ${tenantId} timed out after ${timeoutMs / 1000} s`);
    return false;
  };
  return c;
}

function requestD1(headers) {
  const trips = headers.get("x-d1-round-trips");
  if (trips === null) return null;
  return {
    roundTrips: Number(trips),
    rowsRead: Number(headers.get("x-d1-rows-read") ?? 0),
    rowsWritten: Number(headers.get("x-d1-rows-written") ?? 0),
  };
}

const usageDelta = (after, before) =>
  Object.fromEntries(
    Object.keys(after).map((name) => [
      name,
      Object.fromEntries(Object.keys(after[name]).map((k) => [k, after[name][k] - (before[name]?.[k] ?? 0)])),
    ]),
  );
const perUnit = (usage, units) =>
  units
    ? {
        round_trips: round(usage.roundTrips / units, 2),
        rows_read: round(usage.rowsRead / units, 1),
        rows_written: round(usage.rowsWritten / units, 1),
      }
    : null;
const sumUsage = (list) =>
  list.reduce(
    (a, u) => ({
      roundTrips: a.roundTrips + (u?.roundTrips ?? 0),
      rowsRead: a.rowsRead + (u?.rowsRead ?? 0),
      rowsWritten: a.rowsWritten + (u?.rowsWritten ?? 0),
    }),
    { roundTrips: 0, rowsRead: 0, rowsWritten: 0 },
  );
const objectsTotal = (d) => sumUsage(Object.values(d));

async function cannon(options) {
  const r = await autocannon({
    connections: CONFIG.connections,
    duration: CONFIG.durationSeconds,
    ...options,
  });
  return {
    p50_ms: r.latency.p50,
    p99_ms: r.latency.p99,
    ok_per_s: round(r["2xx"] / r.duration, 1),
    non_2xx: r.non2xx,
    errors: r.errors,
    ok: r["2xx"],
    seconds: r.duration,
  };
}

/**
 * Load runs that are compared with each other, in alternating windows (A B C A B C …, the
 * total duration each), so that a drift of the machine during the phase hits all of them
 * alike. Per run: 2xx/s over all its windows, the median of the windows' p50, the worst p99.
 */
async function alternating(runs, windows = CONFIG.queryWindows) {
  const got = Object.fromEntries(Object.keys(runs).map((label) => [label, []]));
  for (let w = 0; w < windows; w++)
    for (const [label, options] of Object.entries(runs))
      got[label].push(await cannon({ duration: CONFIG.durationSeconds / windows, ...options }));
  const merged = (parts) => ({
    p50_ms: percentile(
      parts.map((p) => p.p50_ms),
      50,
    ),
    p99_ms: Math.max(...parts.map((p) => p.p99_ms)),
    ok_per_s: round(sum(parts.map((p) => p.ok)) / sum(parts.map((p) => p.seconds)), 1),
    non_2xx: sum(parts.map((p) => p.non_2xx)),
    errors: sum(parts.map((p) => p.errors)),
    windows,
  });
  return Object.fromEntries(Object.entries(got).map(([label, parts]) => [label, merged(parts)]));
}

const sum = (values) => values.reduce((a, b) => a + b, 0);

// ---------------------------------------------------------------------------
// Phases

/** Unloaded: one connection, health / submit / query interleaved so background noise hits all alike. */
async function unloaded(c, main, queryTask, simTask) {
  const health = [];
  const submits = [];
  const queries = [];
  const runningQueries = [];
  const simSubmits = [];
  const simQueries = [];
  const running = await c.runningTask(main);
  await c.spans(true);
  for (let i = 0; i < CONFIG.latencySamples; i++) {
    health.push((await call(c.G, "GET", "/health")).ms);
    submits.push((await c.submit(c.G, main.key, `bench unloaded ${i}`)).ms);
    queries.push((await c.query(c.G, main.readKey(), queryTask)).ms);
    runningQueries.push((await c.query(c.G, main.readKey(), running.taskId)).ms);
    if (i < 50) {
      simSubmits.push((await c.submit(c.S, SIM_KEY_DIRECT, `bench unloaded ${i}`)).ms);
      simQueries.push((await c.query(c.S, SIM_KEY_DIRECT, simTask)).ms);
    }
  }
  // Read before the drain: the polls and settlements that follow are not the submit's.
  const spans = await c.spans(true);
  await running.end();
  await c.drain(main.tenantId);
  const h = summary(health);
  const vsHealth = (s) => ({
    ...s,
    p50_over_health_ms: round(s.p50 - h.p50),
    p99_over_health_ms: round(s.p99 - h.p99),
  });
  return {
    health: h,
    submit: vsHealth(summary(submits)),
    query: vsHealth(summary(queries)),
    query_running: vsHealth(summary(runningQueries)),
    simulator_submit: summary(simSubmits),
    simulator_query: summary(simQueries),
    submit_steps: submitSteps(spans),
  };
}

/**
 * Where an unloaded submit's time goes, from the Worker's and the objects' named spans
 * (src/spans.ts, GET /_debug/spans): the wait of each step, mean and p50 ms. The object's
 * creation and the RPC into it are what the Worker waited for its start beyond the time the
 * object spent inside it; the runtime's own share is the client's latency beyond the Worker's.
 */
function submitSteps(spans) {
  if (!spans?.["worker.submit"]) return null;
  const step = (name) => (spans[name] ? { mean_ms: spans[name].mean_ms, p50_ms: spans[name].p50_ms } : null);
  const minus = (a, b) =>
    spans[a] && spans[b] ? { mean_ms: round(spans[a].mean_ms - spans[b].mean_ms, 2), p50_ms: null } : null;
  return {
    worker_submit: step("worker.submit"),
    worker_health: step("worker.health"),
    route_and_moderation: step("submit.route_and_moderation"),
    d1_admission: step("submit.admission"),
    task_object_start: step("submit.object_start"),
    object_creation_and_rpc: minus("submit.object_start", "task.start"),
    gate_acquire: step("gate.acquire"),
    upstream_submit: step("upstream.submit"),
    gate_health_record: step("gate.record"),
    task_accepted: step("task.accepted"),
    note: "waits (workerd's clock moves on I/O only), spans kept in development only",
  };
}

/**
 * Routing overhead: the same unloaded submits with the pool of one (`default`) and with a pool
 * of 1 + ROUTING_EXTRA_MEMBERS members (added through /admin/upstreams: the same simulator, each
 * with its own key, equal priority and weight), in blocks one, three, one again (so drift
 * over time hits both sides), interleaved with GET /health. The added members are disabled
 * at the end, so later phases route as before.
 */
async function routing(c, main, adminToken) {
  const rounds = Math.max(20, Math.floor(CONFIG.latencySamples / 2));
  const health = [];
  const block = async (label, into) => {
    for (let i = 0; i < rounds; i++) {
      health.push((await call(c.G, "GET", "/health")).ms);
      into.push((await c.submit(c.G, main.key, `bench routing ${label} ${i}`)).ms);
    }
  };
  const one = [];
  const three = [];
  await block("one", one);
  const added = [];
  for (let i = 0; i < ROUTING_EXTRA_MEMBERS; i++) {
    const key = `sk-sim-bench-route-${RUN_TAG}-${i}`;
    await c.simConfig(0, key);
    const member = await must(201, c.G, "POST", "/admin/upstreams", {
      auth: adminToken,
      body: { name: `bench-route-${i}`, base_url: c.S, api_key: key, max_inflight: 100_000 },
    });
    added.push(member.id);
  }
  const pool = await must(200, c.G, "GET", "/admin/upstreams", { auth: adminToken });
  const enabled = pool.data.filter((u) => u.enabled).length;
  try {
    await block("three", three);
  } finally {
    for (const id of added) await must(204, c.G, "DELETE", `/admin/upstreams/${id}`, { auth: adminToken });
  }
  await block("one-again", one);
  await c.drain(main.tenantId);
  const after = await must(200, c.G, "GET", "/admin/upstreams", { auth: adminToken });
  const h = summary(health);
  const a = summary(one);
  const b = summary(three);
  return {
    rounds_per_block: rounds,
    pool_sizes: [1, enabled],
    health: h,
    pool_of_one: a,
    pool_of_n: b,
    routing_overhead_p50_ms: round(b.p50 - a.p50),
    routing_overhead_p99_ms: round(b.p99 - a.p99),
    submits_per_member: Object.fromEntries(
      after.data.map((u) => [u.name, { p50_submit_ms: u.live.p50_submit_ms }]),
    ),
  };
}

async function loaded(c, main, queryTask, simTask) {
  const json = { "content-type": "application/json" };
  const body = JSON.stringify({ prompt: "bench load" });
  const health = await cannon({ url: `${c.G}/health` });
  const submit = await cannon({
    url: `${c.G}/v1/midjourney/generations/imagine`,
    method: "POST",
    headers: { ...json, authorization: `Bearer ${main.key}` },
    body,
  });
  await c.drain(main.tenantId);
  const queries = (taskId) => ({
    url: `${c.G}/v1/midjourney/${taskId}`,
    requests: [
      {
        setupRequest: (request) => ({
          ...request,
          headers: { ...request.headers, authorization: `Bearer ${main.readKey()}` },
        }),
      },
    ],
  });
  // The queries' own baseline, alternating with them: the submit run leaves the Worker busier
  // (thousands of objects, a larger heap) than the first /health run saw it.
  const running = await c.runningTask(main);
  const {
    health: healthBeforeQueries,
    query,
    running: queryRunning,
  } = await alternating({
    health: { url: `${c.G}/health` },
    query: queries(queryTask),
    running: queries(running.taskId),
  });
  await running.end();
  await c.drain(main.tenantId);
  const simSubmit = await cannon({
    url: `${c.S}/v1/midjourney/generations/imagine`,
    method: "POST",
    headers: { ...json, authorization: `Bearer ${SIM_KEY_DIRECT}` },
    body,
  });
  const simQuery = await cannon({
    url: `${c.S}/v1/midjourney/${simTask}`,
    headers: { authorization: `Bearer ${SIM_KEY_DIRECT}` },
  });
  return {
    connections: CONFIG.connections,
    seconds: CONFIG.durationSeconds,
    health,
    submit: { ...submit, x_health: ratio(submit.ok_per_s, health.ok_per_s) },
    health_before_queries: healthBeforeQueries,
    query: { ...query, x_health: ratio(query.ok_per_s, healthBeforeQueries.ok_per_s) },
    query_running: { ...queryRunning, x_health: ratio(queryRunning.ok_per_s, healthBeforeQueries.ok_per_s) },
    simulator_submit: simSubmit,
    simulator_query: simQuery,
  };
}

/**
 * D1 per operation: the request's own statements (x-debug-d1 headers) plus the Durable Objects'
 * (GET /_debug/d1 before and after). Tasks run 100 s upstream (time scale 1) so that submit,
 * polls and settlement can be told apart: submit N, wait ~9 s of polls, then jump the
 * simulator's clock so every task ends at its next poll and settles.
 */
async function d1Counts(c, main) {
  const n = CONFIG.d1Tasks;
  await c.simConfig(1, SIM_KEY_GATEWAY);
  const polls0 = await c.simPolls(SIM_KEY_GATEWAY);
  const objects0 = await c.objectsD1();
  const storage0 = await c.objectsStorage();
  const requestUsage = [];
  const tasks = [];
  for (let i = 0; i < n; i++) {
    const s = await c.submit(c.G, main.key, `bench d1 ${RUN_TAG} ${i}`, true);
    requestUsage.push(s.d1);
    tasks.push(s.taskId);
  }
  const objects1 = await c.objectsD1();
  const polls1 = await c.simPolls(SIM_KEY_GATEWAY);
  await sleep(9_000);
  const objects2 = await c.objectsD1();
  const polls2 = await c.simPolls(SIM_KEY_GATEWAY);
  await must(200, c.S, "POST", "/_sim/clock", { body: { advance_ms: 300_000, key: SIM_KEY_GATEWAY } });
  await c.drain(main.tenantId);
  await sleep(1_000);
  const objects3 = await c.objectsD1();
  const storage3 = await c.objectsStorage();
  const polls3 = await c.simPolls(SIM_KEY_GATEWAY);
  await c.simConfig(0, SIM_KEY_GATEWAY);

  const queryUsage = [];
  const q0 = await c.objectsD1();
  // One key, its cache warm: a query's own cost (a cold key adds one read per key per 10 s).
  await c.query(c.G, main.key, tasks[0]);
  for (let i = 0; i < n; i++) queryUsage.push((await c.query(c.G, main.key, tasks[i % n], true)).d1);
  const q1 = await c.objectsD1();

  const submitObjects = objectsTotal(usageDelta(objects1, objects0));
  const pollObjects = objectsTotal(usageDelta(objects2, objects1));
  const endObjects = objectsTotal(usageDelta(objects3, objects2));
  const midPolls = polls2 - polls1;
  const finalPolls = polls3 - polls2;
  const perPoll = perUnit(pollObjects, midPolls);
  const request = sumUsage(requestUsage);
  const submitTotal = sumUsage([request, submitObjects]);
  const settlementWithFinalPoll = perUnit(endObjects, n);
  const perTaskLife = perUnit(sumUsage([submitTotal, pollObjects, endObjects]), n);
  return {
    tasks: n,
    upstream_polls: { during_submits: polls1 - polls0, in_9s: midPolls, to_settle: finalPolls },
    per_submit: {
      request: perUnit(request, n),
      objects: perUnit(submitObjects, n),
      total: perUnit(submitTotal, n),
    },
    per_poll: perPoll,
    per_settlement_incl_final_poll: settlementWithFinalPoll,
    per_task_life: perTaskLife,
    object_storage_per_task_life: storageRowsPerTask(storage0, storage3, n),
    per_query: {
      request: perUnit(sumUsage(queryUsage), n),
      objects: perUnit(objectsTotal(usageDelta(q1, q0)), n),
    },
    by_object_class: {
      submit: usageDelta(objects1, objects0),
      polls: usageDelta(objects2, objects1),
      settlement: usageDelta(objects3, objects2),
    },
    unmetered_note: "statements run through raw()/exec() have no row counts (counted in 'unmetered')",
  };
}

/** The objects' own SQLite rows per task, from two readings of GET /_debug/storage, in all and by class. */
function storageRowsPerTask(before, after, n) {
  const byClass = {};
  let read = 0;
  let written = 0;
  for (const [name, rows] of Object.entries(after)) {
    const r = rows.rowsRead - (before[name]?.rowsRead ?? 0);
    const w = rows.rowsWritten - (before[name]?.rowsWritten ?? 0);
    byClass[name] = { rows_read: round(r / n, 1), rows_written: round(w / n, 1) };
    read += r;
    written += w;
  }
  return { rows_read: round(read / n, 1), rows_written: round(written / n, 1), by_class: byClass };
}

/**
 * workerd CPU per operation, per process group (the gateway's, the dev tooling's, the
 * simulator's): CPU of each run (N operations) minus that of N GET /health, over N, each
 * with the idle rate taken out. Runs go in the order given; `health_ms_per_request` is /health's own.
 */
async function cpuOverHealth(c, n, runs) {
  const pids = {
    worker: c.stack.gatewayPids,
    tooling: c.stack.toolingPids,
    simulator: c.stack.simulatorPids,
  };
  const read = () => Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuMs(p)]));
  const diff = (a, b) => Object.fromEntries(Object.keys(a).map((k) => [k, b[k] - a[k]]));
  const measure = async (run) => {
    const before = read();
    const t0 = performance.now();
    await run();
    return { cpu: diff(before, read()), ms: performance.now() - t0 };
  };
  const health = await measure(async () => {
    for (let i = 0; i < n; i++) await call(c.G, "GET", "/health");
  });
  const measured = {};
  for (const [label, entry] of Object.entries(runs)) {
    // A run is a function, or { before, run, after } whose setup and teardown are not measured.
    const { before, run, after } = typeof entry === "function" ? { run: entry } : entry;
    const context = await before?.();
    try {
      measured[label] = await measure(() => run(context));
    } finally {
      await after?.(context);
    }
  }
  const idle = await measure(() => sleep(2_000));
  const idleRate = (k) => idle.cpu[k] / idle.ms;
  const own = (m, k) => m.cpu[k] - idleRate(k) * m.ms;
  const out = {};
  for (const k of Object.keys(pids)) {
    if (!pids[k].length) continue;
    out[k] = {
      health_ms_per_request: round(own(health, k) / n, 2),
      idle_ms_per_s: round(idleRate(k) * 1000, 1),
    };
    for (const [label, m] of Object.entries(measured))
      out[k][`${label}_ms_over_health`] = round((own(m, k) - own(health, k)) / n, 2);
  }
  return out;
}

/** workerd CPU per submit (its task's whole life) and per query, over GET /health. */
async function cpu(c, main, queryTask) {
  const n = CONFIG.cpuRequests;
  const measured = await cpuOverHealth(c, n, {
    query: async () => {
      for (let i = 0; i < n; i++) await c.query(c.G, main.readKey(), queryTask);
    },
    query_running: {
      before: () => c.runningTask(main),
      run: async (running) => {
        for (let i = 0; i < n; i++) await c.query(c.G, main.readKey(), running.taskId);
      },
      after: (running) => running.end(),
    },
    // A submit's CPU includes its task's whole life (start, poll, settlement): wait for the drain.
    submit: async () => {
      for (let i = 0; i < n; i++) await c.submit(c.G, main.key, `bench cpu ${i}`);
      await c.drain(main.tenantId);
    },
  });
  return { requests: n, clock_tick_ms: 10, ...measured };
}

/**
 * The same operations again with V8's sampler on the gateway's isolate, on the stack restarted
 * with its inspector (after the /proc runs: the inspector slows them): the Worker's and its
 * objects' own time, without the local D1 engine and the runtime's plumbing
 * (bench/support.mjs, isolateSampler).
 */
async function isolateCpu(c, main, queryTask, n) {
  const sampler = await isolateSampler(c.stack.inspectorPort, /mj-gateway/);
  try {
    await sampler.measure("health", async () => {
      for (let i = 0; i < n; i++) await call(c.G, "GET", "/health");
    });
    await sampler.measure("query", async () => {
      for (let i = 0; i < n; i++) await c.query(c.G, main.readKey(), queryTask);
    });
    const running = await c.runningTask(main);
    await sampler.measure("query_running", async () => {
      for (let i = 0; i < n; i++) await c.query(c.G, main.readKey(), running.taskId);
    });
    await running.end();
    await sampler.measure("submit", async () => {
      for (let i = 0; i < n; i++) await c.submit(c.G, main.key, `bench isolate cpu ${i}`);
      await c.drain(main.tenantId);
    });
  } finally {
    sampler.close();
  }
  const { period_us, ticks, busy } = sampler.busyMs();
  const per = (label) => (busy[label] === null ? null : round(busy[label] / n, 2));
  const over = (label) => (per(label) === null ? null : round(per(label) - per("health"), 2));
  return {
    sampler_period_us: round(period_us, 0),
    ticks_for_period: ticks,
    health_ms_per_request: per("health"),
    submit_ms_over_health: over("submit"),
    query_ms_over_health: over("query"),
    query_running_ms_over_health: over("query_running"),
  };
}

/**
 * The platform's floor (src/floor-probe.ts, GET /_debug/floor, development only): what any
 * gateway of this design must do, with none of ours around it. Under a submit: one D1 round
 * trip, one call into a new object, the upstream's answer, in series; under a running task's
 * query: one call into its object; under a task's life (CPU): the submit's floor, one poll
 * and a second D1 round trip. Each step is the lightest of its kind (a lower bound). Set
 * beside /health and the product's own submit and query in the same windows, it says which
 * goals this stack allows at all and how much of a gap is the product's.
 */
async function floor(c, main, adminToken) {
  const probe = (steps, extra = "") => `/_debug/floor?steps=${steps}${extra}`;
  const submitFloor = probe("d1,object,upstream");
  const lifeFloor = probe("d1,object,upstream,poll,d1");
  // A running task's query floor calls its object; the task ends (and the tenant drains) after.
  const withRunningTask = async (work) => {
    const running = await c.runningTask(main);
    try {
      return await work(running.taskId, probe("query", `&task=${running.taskId}&tenant=${main.tenantId}`));
    } finally {
      await running.end();
      await c.drain(main.tenantId);
    }
  };
  // The probe answers the operator only (it spends the upstream's money).
  const asOperator = { auth: adminToken };
  const headers = { authorization: `Bearer ${adminToken}` };
  await must(200, c.G, "GET", submitFloor, asOperator);
  const unloadedFigures = await withRunningTask((taskId, queryFloor) =>
    floorUnloaded(c, main, { submitFloor, queryFloor, taskId, asOperator }),
  );
  // No product submit runs from here on, so nothing waits for a drain between the runs.
  const { load, cpuFigures } = await withRunningTask(async (_taskId, queryFloor) => {
    const load = await alternating({
      health: { url: `${c.G}/health` },
      submit_floor: { url: `${c.G}${submitFloor}`, headers },
      query_floor: { url: `${c.G}${queryFloor}`, headers },
      bare: { url: `${c.G}${probe("")}`, headers },
    });
    const n = CONFIG.cpuRequests;
    const cpuFigures = await cpuOverHealth(c, n, {
      life_floor: async () => {
        for (let i = 0; i < n; i++) await must(200, c.G, "GET", lifeFloor, asOperator);
      },
      query_floor: async () => {
        for (let i = 0; i < n; i++) await must(200, c.G, "GET", queryFloor, asOperator);
      },
    });
    return { load, cpuFigures };
  });
  const x = (label) => ({ ...load[label], x_health: ratio(load[label].ok_per_s, load.health.ok_per_s) });
  // One thread serves everything here, so a request's costs add up: the most a request could
  // reach that passes the Worker's handling (as /health does) and does a floor's steps is
  // 1 / (1/health + 1/floor − 1/bare), the bare probe being the runtime's share both count.
  const ceiling = (label) => {
    const perRequest = 1 / load.health.ok_per_s + 1 / load[label].ok_per_s - 1 / load.bare.ok_per_s;
    return round(1 / perRequest / load.health.ok_per_s, 2);
  };
  return {
    steps: { submit: submitFloor, query: probe("query"), life: lifeFloor },
    unloaded: unloadedFigures,
    loaded: {
      connections: CONFIG.connections,
      health: load.health,
      bare: x("bare"),
      submit_floor: { ...x("submit_floor"), ceiling_x_health: ceiling("submit_floor") },
      query_floor: { ...x("query_floor"), ceiling_x_health: ceiling("query_floor") },
    },
    cpu: { requests: CONFIG.cpuRequests, ...cpuFigures },
  };
}

/** One connection, interleaved, so that background noise hits the floors and the product alike. */
async function floorUnloaded(c, main, { submitFloor, queryFloor, taskId, asOperator }) {
  const floorMs = async (path) => {
    const answer = await call(c.G, "GET", path, asOperator);
    if (answer.status !== 200) throw new Error(`${path}: ${answer.status} ${answer.text.slice(0, 200)}`);
    return answer.ms;
  };
  const samples = { health: [], submit_floor: [], submit: [], query_floor: [], query_running: [] };
  for (let i = 0; i < CONFIG.latencySamples; i++) {
    samples.health.push((await call(c.G, "GET", "/health")).ms);
    samples.submit_floor.push(await floorMs(submitFloor));
    samples.submit.push((await c.submit(c.G, main.key, `bench floor ${i}`)).ms);
    samples.query_floor.push(await floorMs(queryFloor));
    samples.query_running.push((await c.query(c.G, main.readKey(), taskId)).ms);
  }
  const h = summary(samples.health);
  return Object.fromEntries(
    Object.entries(samples).map(([label, values]) => {
      const s = summary(values);
      if (label === "health") return [label, s];
      return [
        label,
        { ...s, p50_over_health_ms: round(s.p50 - h.p50), p99_over_health_ms: round(s.p99 - h.p99) },
      ];
    }),
  );
}

async function sseFanOut(c, sse, adminToken) {
  const n = CONFIG.subscribers;
  const sink = `bench-sse-${c.stack.mode}-${RUN_TAG}`;
  await must(201, c.G, "POST", `/admin/tenants/${sse.tenantId}/webhooks`, {
    auth: adminToken,
    body: { url: `${c.S}/_sim/webhooks/${sink}`, events: "all" },
  });
  await c.simConfig(1, SIM_KEY_GATEWAY);
  const { taskId } = await c.submit(c.G, sse.key, `bench-sse ${RUN_TAG}`);
  await sleep(2_000);
  // Under wrangler dev the subscribers use the Worker's own socket: its dev proxy (absent in
  // production) does not cope with 1,000 long-lived streams (see README).
  let base = c.stack.workerUrl;
  for (const pid of c.stack.gatewayPids) base ??= await workerSocket(pid);
  base ??= c.G;
  const rssBefore = await sampleRss(c.stack.gatewayPids);
  const agent = new http.Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
  const url = `${base}/v1/midjourney/${taskId}/events`;
  const headers = { authorization: `Bearer ${sse.key}` };
  const subscribers = [];
  let next = 0;
  const connectStart = nowMs();
  const opener = async () => {
    while (next < n && nowMs() < connectStart + 90_000) {
      next++;
      subscribers.push(await openSubscriber(http, agent, url, headers, { connectTimeoutMs: 30_000 }));
    }
  };
  await Promise.all(Array.from({ length: 50 }, opener));
  const connected = subscribers.filter((s) => s.ok);
  const connectSeconds = (nowMs() - connectStart) / 1000;
  await sleep(2_000);
  const rssConnected = await sampleRss(c.stack.gatewayPids);
  await sleep(4_000);
  await must(200, c.S, "POST", "/_sim/clock", { body: { advance_ms: 40_000, key: SIM_KEY_GATEWAY } });
  await sleep(7_000);
  await must(200, c.S, "POST", "/_sim/clock", { body: { advance_ms: 80_000, key: SIM_KEY_GATEWAY } });
  const endUntil = Date.now() + 30_000;
  while (Date.now() < endUntil && connected.some((s) => !s.ended)) await sleep(250);
  const stillOpen = connected.filter((s) => !s.ended).length;
  for (const s of subscribers) s.request?.destroy();
  agent.destroy();
  await c.simConfig(0, SIM_KEY_GATEWAY);

  // The change time: the TaskObject stamps each change (Date.now() after the poll answered) and
  // sends it as the webhook's timestamp; the webhook id carries the event's seq (= SSE id).
  let hooks = [];
  const hookUntil = Date.now() + 20_000;
  while (Date.now() < hookUntil) {
    hooks = await must(200, c.S, "GET", `/_sim/webhooks/${sink}`);
    if (hooks.some((h) => JSON.parse(h.body).data?.status === "SUCCESS")) break;
    await sleep(500);
  }
  const changedAt = new Map();
  for (const hook of hooks) {
    const seq = Number(/_(\d+)_[^_]+$/.exec(hook.headers["webhook-id"] ?? "")?.[1]);
    const body = JSON.parse(hook.body);
    if (Number.isFinite(seq) && !changedAt.has(seq))
      changedAt.set(seq, { at: Date.parse(body.timestamp), status: body.data.status });
  }
  const lastConnect = Math.max(...connected.map((s) => s.connectedAt));
  // The TaskObject's own report of each broadcast (src/durable/sse-broadcaster.ts): subscribers
  // reached and its turn's duration, the in-object part of every subscriber's latency.
  const broadcasts = c.stack
    .reports()
    .filter((r) => r.event === "sse_broadcast" && r.task_id === taskId && r.stream !== "tenant");
  const delays = [];
  /** Per event: first receipt − change = the in-object broadcast plus one delivery; spread = last − first receipt. */
  const firstReceipt = [];
  const spread = [];
  for (const [seq, change] of changedAt) {
    if (change.at <= lastConnect) continue;
    const times = connected.map((s) => s.events.find((e) => e.id === seq)?.at).filter((t) => t !== undefined);
    if (!times.length) continue;
    delays.push(...times.map((t) => t - change.at));
    firstReceipt.push(Math.min(...times) - change.at);
    spread.push(Math.max(...times) - Math.min(...times));
  }
  return {
    subscribers: n,
    via: base === c.G ? "the gateway port" : `the Worker's own socket (${base})`,
    connected: connected.length,
    connect_seconds: round(connectSeconds, 1),
    connect_failures: histogram(subscribers.filter((s) => !s.ok).map((s) => s.error ?? "unknown")),
    change_to_receipt_ms: summary(delays, 1),
    first_receipt_per_event_ms: summary(firstReceipt, 1),
    receipt_spread_per_event_ms: summary(spread, 1),
    events_measured: firstReceipt.length,
    in_object_broadcast_ms: summary(
      broadcasts.filter((b) => changedAt.get(b.seq)?.at > lastConnect).map((b) => b.turn_ms),
      1,
    ),
    in_object_broadcast_subscribers: broadcasts.map((b) => b.subscribers),
    in_object_broadcast_note:
      "the TaskObject's sse_broadcast log line: the turn that enqueued the event to every subscriber (Workers' clock moves between turns, so an upper bound)",
    kib_per_subscriber: connected.length ? round((rssConnected - rssBefore) / connected.length, 1) : null,
    rss_mib: { before: round(rssBefore / 1024, 1), connected: round(rssConnected / 1024, 1) },
    streams_open_30s_after_success: stillOpen,
  };
}

/** Admission windows of one database pooled: 200s over the seconds measured, all windows together. */
function pooled(windows) {
  const perSecondAll = windows.flatMap((w) => w.per_second);
  return {
    concurrency: CONFIG.admissionConcurrency,
    windows: windows.length,
    per_s: round(mean(perSecondAll), 1),
    per_window: windows.map((w) => w.per_s),
    status_codes: windows.reduce((all, w) => {
      for (const [code, n] of Object.entries(w.status_codes)) all[code] = (all[code] ?? 0) + n;
      return all;
    }, {}),
    client_errors: windows.reduce((n, w) => n + w.client_errors, 0),
  };
}

async function admissionsPerSecond(c, tenant, durationMs = CONFIG.durationSeconds * 1000) {
  const run = await closedLoop({
    concurrency: CONFIG.admissionConcurrency,
    durationMs,
    maxRequests: 50_000,
    request: () =>
      fetch(`${c.G}/v1/midjourney/generations/imagine`, {
        method: "POST",
        headers: { authorization: `Bearer ${tenant.key}`, "content-type": "application/json" },
        body: JSON.stringify({ prompt: "bench admission" }),
        signal: AbortSignal.timeout(30_000),
      }),
  });
  const buckets = perSecond(run.samples, 200, run.elapsedMs);
  await c.drain(tenant.tenantId);
  return {
    concurrency: CONFIG.admissionConcurrency,
    per_s: round(mean(buckets), 1),
    per_second: buckets,
    status_codes: histogram(run.samples.map((s) => s.status)),
    client_errors: run.errors.length,
  };
}

/** Bytes of the D1 file (after a checkpoint) and the rows that matter, read with the stack stopped. */
function d1Size(file) {
  sqlite(file, "PRAGMA wal_checkpoint(TRUNCATE);");
  const [row] = sqlite(
    file,
    "SELECT (SELECT page_count FROM pragma_page_count()) * (SELECT page_size FROM pragma_page_size()) AS bytes, (SELECT COUNT(*) FROM tasks) AS tasks, (SELECT COUNT(*) FROM ledger) AS ledger;",
    { json: true },
  );
  return row;
}

/**
 * An old tenant's settled history: `rows` ledger rows (a charge and its refund per task, dated
 * a year back), written straight into the stopped stack's D1 file in one transaction. The
 * ledger's BEFORE INSERT guards are lifted for the import only (they would check each seeded
 * row) and put back as they were.
 */
function seedLedger(file, rows) {
  const guards = sqlite(
    file,
    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'ledger' AND sql LIKE '%BEFORE INSERT%';",
    { json: true },
  );
  const [{ base }] = sqlite(file, "SELECT COALESCE(MAX(id), 0) + 1 AS base FROM ledger;", { json: true });
  const yearAgo = Date.now() - 365 * 86_400_000;
  const script = [
    "BEGIN;",
    ...guards.map((g) => `DROP TRIGGER ${g.name};`),
    `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ${Math.floor(rows)})
     INSERT INTO ledger (id, tenant_id, key_id, task_id, kind, action, amount, balance_after, reason, ref_id, created_at, step)
     SELECT ${base} + i, 'ten_bench_history', 'key_bench_history', printf('task_hist%012d_%012d', ${base}, i / 2),
            CASE i % 2 WHEN 0 THEN 'charge' ELSE 'refund' END, 'imagine',
            CASE i % 2 WHEN 0 THEN -40000 ELSE 40000 END, 1000000000,
            NULL, CASE i % 2 WHEN 0 THEN NULL ELSE ${base} + i - 1 END,
            ${yearAgo} + i * 10, 'submit'
     FROM n;`,
    ...guards.map((g) => `${g.sql};`),
    "COMMIT;",
  ].join("\n");
  const t0 = Date.now();
  sqlite(file, script, { timeoutMs: 900_000 });
  return { rows, seconds: round((Date.now() - t0) / 1000, 1) };
}

/**
 * Hosted results: the copy's own time per image (its `asset_hosting_done` log line: files,
 * bytes, duration_ms), submit-to-SUCCESS of hosted against upstream-mode tasks (the task view
 * polled every 100 ms), and serving from R2 (/assets/… whole, through the Workers cache, and a
 * 64 KiB Range, from R2 each time) against /health of the same Worker.
 */
async function assets(c, adminToken) {
  const hosted = await c.tenantWithKey(`bench-hosted-${RUN_TAG}`, BIG_BALANCE);
  await must(200, c.G, "PATCH", `/admin/tenants/${hosted.tenantId}`, {
    auth: adminToken,
    body: { asset_mode: "hosted" },
  });
  const plain = await c.tenantWithKey(`bench-upstream-${RUN_TAG}`, BIG_BALANCE);
  const finish = async (key, prompt) => {
    const started = monoMs();
    const { taskId } = await c.submit(c.G, key, prompt);
    for (let i = 0; i < 600; i++) {
      const { task } = await c.query(c.G, key, taskId);
      if (task.status === "SUCCESS") return { ms: monoMs() - started, task };
      if (task.status === "FAILURE" || task.status === "CANCEL") throw new Error(`${taskId}: ${task.status}`);
      await sleep(100);
    }
    throw new Error(`${taskId} did not finish in 60 s`);
  };
  const reportedBefore = c.stack.reports().length;
  const hostedRuns = [];
  const plainRuns = [];
  for (let i = 0; i < CONFIG.assetTasks; i++) {
    hostedRuns.push(await finish(hosted.key, `bench hosted ${i}`));
    plainRuns.push(await finish(plain.key, `bench upstream ${i}`));
  }
  await sleep(500); // the last copy's log line
  const copies = c.stack
    .reports()
    .slice(reportedBefore)
    .filter((line) => line.event === "asset_hosting_done" && line.copied > 0);
  const perImage = copies.map((line) => line.duration_ms / line.copied);
  const link = hostedRuns[0].task.grid_image_url;
  if (!String(link).startsWith(c.G)) throw new Error(`not a hosted link: ${link}`);
  const fileBytes = Number((await fetch(link, { method: "HEAD" })).headers.get("content-length"));
  const serve = async (options) => {
    const r = await autocannon({
      connections: CONFIG.connections,
      duration: CONFIG.durationSeconds,
      ...options,
    });
    return {
      ok_per_s: round((r["2xx"] ?? 0) / r.duration, 1),
      p50_ms: r.latency.p50,
      p99_ms: r.latency.p99,
      mib_per_s: round(r.throughput.average / 2 ** 20, 1),
      non_2xx: r.non2xx,
      errors: r.errors,
    };
  };
  const health = await serve({ url: `${c.G}/health` });
  const whole = await serve({ url: link });
  const range = await serve({ url: link, headers: { range: "bytes=0-65535" } });
  await c.drain(hosted.tenantId);
  await c.drain(plain.tenantId);
  const successMs = (runs) => summary(runs.map((r) => r.ms));
  return {
    tasks: CONFIG.assetTasks,
    copy: {
      tasks_logged: copies.length,
      files_per_task: copies.length ? round(mean(copies.map((l) => l.copied)), 1) : null,
      bytes_per_task: copies.length ? round(mean(copies.map((l) => l.bytes)), 0) : null,
      per_task_ms: summary(copies.map((l) => l.duration_ms)),
      per_image_ms: summary(perImage),
    },
    success: {
      hosted_ms: successMs(hostedRuns),
      upstream_mode_ms: successMs(plainRuns),
      note: "submit to SUCCESS seen by polling the task view every 100 ms; the gap is the copy plus noise",
    },
    serving: {
      file_bytes: fileBytes,
      health,
      whole_file: { ...whole, x_health: ratio(whole.ok_per_s, health.ok_per_s) },
      range_64k: { ...range, x_health: ratio(range.ok_per_s, health.ok_per_s) },
    },
  };
}

// ---------------------------------------------------------------------------

async function runMode(mode) {
  const port = PORTS[mode];
  const state = stateRoot(mode);
  const persistTo = join(state.dir, `bench-${mode}`);
  const buildDir = join(ROOT, "bench", ".build");
  const adminToken = `bench-admin-${RUN_TAG}`;
  const out = { port, state: state.kind, load_average_1m: { start: load1() } };
  results.modes[mode] = out;
  log(`${mode}: fresh state ${persistTo}`);
  freshState(persistTo);
  const emptyBytes = d1Size(d1File(persistTo)).bytes;
  // `inspector`: the gateway's V8 inspector listens. Only for the CPU phase's isolate pass: with
  // it listening, every request was slower (bench/README.md, CPU: the isolate alone).
  const start = async ({ inspector = false } = {}) => {
    if (mode === "lean")
      return startLean({
        buildDir,
        persistTo,
        port,
        simulatorPort: port + 1,
        adminToken,
        inspectorPort: inspector ? LEAN_INSPECTOR_PORT : null,
      });
    return startDev({
      persistTo,
      port,
      simulatorPort: port + 1,
      adminToken,
      log: (label, text) => {
        const stamp = new Date().toISOString().slice(11, 23);
        for (const line of text.split("\n"))
          if (line.trim()) serverLog.push(`${stamp} [${mode} ${label}] ${line}`);
      },
    });
  };
  current = await start();
  let c = client(current, adminToken);
  log(`${mode}: gateway ${c.G}, simulator ${c.S}`);
  // The pool's default member caps our open tasks at 100; the load runs keep more open.
  await must(200, c.G, "PATCH", "/admin/upstreams/default", {
    auth: adminToken,
    body: { max_inflight: 100_000 },
  });
  const main = await c.tenantWithKey("bench-main", BIG_BALANCE);
  main.readKeys = [];
  for (let i = 0; i < READ_KEYS; i++) main.readKeys.push(await c.newKey(main.tenantId));
  let readCount = 0;
  main.readKey = () => main.readKeys[readCount++ % READ_KEYS];
  const sse = await c.tenantWithKey("bench-sse", BIG_BALANCE);
  await c.simConfig(0, SIM_KEY_GATEWAY);
  await c.simConfig(0, SIM_KEY_DIRECT);
  const warm = [];
  for (let i = 0; i < 10; i++) {
    warm.push((await c.submit(c.G, main.key, `bench warm-up ${i}`)).taskId);
    await call(c.G, "GET", "/health");
  }
  const simTask = (await c.submit(c.S, SIM_KEY_DIRECT, "bench query target")).taskId;
  for (let i = 0; i < READ_KEYS; i++) await c.query(c.G, main.readKey(), warm[0]);
  await c.drain(main.tenantId);

  const phase = async (name, run) => {
    if (ONLY.length && !ONLY.includes(name)) return undefined;
    log(`${mode}: ${name}`);
    out.load_average_1m[name] = load1();
    try {
      return await run();
    } catch (error) {
      log(`${mode} ${name} failed: ${error?.stack ?? error}`);
      results.notes.push(`${mode} ${name} failed: ${String(error?.message ?? error)}`);
      await c.drain(main.tenantId).catch(() => {});
      return { error: String(error?.message ?? error) };
    }
  };
  // First, while the Worker's heap is small: its RSS growth per subscriber is the memory figure.
  out.sse = await phase("sse", () => sseFanOut(c, sse, adminToken));
  // Before the load phases: a gate deletes each submit's timing row when it leaves the 60 s
  // health window, so right after them it would bill the d1 phase's few tasks for deleting
  // the thousands of rows the load phases left.
  out.d1 = await phase("d1", () => d1Counts(c, main));
  out.unloaded = await phase("unloaded", () => unloaded(c, main, warm[0], simTask));
  out.routing = await phase("routing", () => routing(c, main, adminToken));
  out.loaded = await phase("loaded", () => loaded(c, main, warm[0], simTask));
  out.floor = await phase("floor", () => floor(c, main, adminToken));
  out.cpu = await phase("cpu", async () => {
    const measured = await cpu(c, main, warm[0]);
    if (mode !== "lean") return measured;
    const restart = async (inspector) => {
      await current.stop();
      current = null;
      current = await start({ inspector });
      c = client(current, adminToken);
      await c.simConfig(0, SIM_KEY_GATEWAY);
      for (let i = 0; i < 10; i++) await c.submit(c.G, main.key, `bench warm-up ${i}`);
      for (let i = 0; i < READ_KEYS; i++) await c.query(c.G, main.readKey(), warm[0]);
      await c.drain(main.tenantId);
    };
    await restart(true);
    try {
      measured.isolate = await isolateCpu(c, main, warm[0], CONFIG.cpuRequests);
    } finally {
      await restart(false);
    }
    return measured;
  });
  out.assets = await phase("assets", () => assets(c, adminToken));
  if (mode === "lean") {
    out.history = await phase("history", async () => {
      // Side by side: this run's database and a copy of it with the seeded history, each on
      // its own stack, measured in alternating windows so that both see the same machine.
      await current.stop();
      current = null;
      const file = d1File(persistTo);
      const grown = d1Size(file);
      const seededDir = `${persistTo}-seeded`;
      rmSync(seededDir, { recursive: true, force: true });
      cpSync(persistTo, seededDir, { recursive: true });
      log(`${mode}: seeding ${CONFIG.seedRows} ledger rows into a copy (${seededDir})`);
      const seed = seedLedger(d1File(seededDir), CONFIG.seedRows);
      const seeded = d1Size(d1File(seededDir));
      current = await start();
      c = client(current, adminToken);
      const twin = await startLean({
        buildDir,
        persistTo: seededDir,
        port: SEEDED_PORT,
        simulatorPort: SEEDED_PORT + 1,
        adminToken,
      });
      const ct = client(twin, adminToken);
      let empty;
      let withHistory;
      try {
        for (const x of [c, ct]) {
          await x.simConfig(0, SIM_KEY_GATEWAY);
          for (let i = 0; i < 10; i++) await x.submit(x.G, main.key, `bench warm-up ${i}`);
          await x.drain(main.tenantId);
        }
        const windows = { empty: [], seeded: [] };
        const windowMs = (CONFIG.durationSeconds * 1000) / HISTORY_ROUNDS;
        for (let i = 0; i < HISTORY_ROUNDS; i++) {
          const order = i % 2 ? ["seeded", "empty"] : ["empty", "seeded"];
          for (const which of order)
            windows[which].push(await admissionsPerSecond(which === "empty" ? c : ct, main, windowMs));
        }
        [empty, withHistory] = [windows.empty, windows.seeded].map(pooled);
      } finally {
        await twin.stop();
        // The copy is remade each run; in memory it would hold a GiB of RAM until the next.
        if (state.kind === "tmpfs") rmSync(seededDir, { recursive: true, force: true });
      }
      const bytesPerTask = grown.tasks ? (grown.bytes - emptyBytes) / grown.tasks : null;
      const days = (perDay) => (bytesPerTask ? round(10e9 / (bytesPerTask * perDay), 1) : null);
      return {
        admissions_empty: empty,
        admissions_seeded: withHistory,
        seeded_ledger_rows: seed.rows,
        seed_seconds: seed.seconds,
        seeded_over_empty: ratio(withHistory.per_s, empty.per_s),
        d1: {
          empty_bytes: emptyBytes,
          after_run_bytes: grown.bytes,
          tasks: grown.tasks,
          ledger_rows: grown.ledger,
          seeded_bytes: seeded.bytes,
          bytes_per_task: round(bytesPerTask, 0),
          note: "file growth over every task of this run (their ledger, idempotency, rate-window and webhook rows and indexes included), over the tasks row count",
        },
        days_to_10gb_without_archive: { at_100k_per_day: days(100_000), at_1m_per_day: days(1_000_000) },
        days_to_10gb_with_archive: "see the archive section",
      };
    });
  }
  out.load_average_1m.end = load1();
  if (current) await current.stop();
  current = null;
}

function cost() {
  const lean = results.modes.lean;
  if (!lean?.d1?.per_task_life || !lean?.cpu?.worker) return null;
  const life = lean.d1.per_task_life;
  const polls = (lean.d1.upstream_polls.in_9s + lean.d1.upstream_polls.to_settle) / lean.d1.tasks;
  const bytes = lean.history?.d1?.bytes_per_task ?? 0;
  const perTask = {
    workerRequests: 1,
    cpuMs: Math.max(0, lean.cpu.worker.submit_ms_over_health + lean.cpu.worker.health_ms_per_request),
    // start RPC + one alarm per poll + one TenantHub publish per change (at most one per poll, plus the start)
    objectRequests: 1 + 2 * polls + 1,
    objectActiveSeconds: CONFIG.costTaskSeconds,
    d1RowsRead: life.rows_read,
    d1RowsWritten: life.rows_written,
    d1Bytes: bytes,
    objectRowsRead: lean.d1.object_storage_per_task_life?.rows_read ?? 0,
    objectRowsWritten: lean.d1.object_storage_per_task_life?.rows_written ?? 0,
  };
  const query = {
    workerRequests: 1,
    // A running task's query (one object request); a finished task's costs less (no object).
    cpuMs: Math.max(
      0,
      (lean.cpu.worker.query_running_ms_over_health ?? lean.cpu.worker.query_ms_over_health) +
        lean.cpu.worker.health_ms_per_request,
    ),
    objectRequests: 1,
    objectActiveSeconds: 0,
    d1RowsRead: lean.d1.per_query.request.rows_read,
    d1RowsWritten: lean.d1.per_query.request.rows_written,
    d1Bytes: 0,
  };
  return {
    prices: PRICES,
    assumptions: {
      per_task: perTask,
      polls_per_task_measured: round(polls, 2),
      object_active_seconds:
        "a TaskObject polled every 3–5 s stays active for the task's whole life; BENCH_COST_TASK_SECONDS (default 60) is that life",
      cpu: "workerd CPU of the lean stack, which also runs the local D1 and the objects: an upper bound for billed Workers CPU",
      d1_storage: "one month of the task's bytes (no archive)",
      durable_object_storage:
        "the objects' SQLite rows read and written are measured (GET /_debug/storage); their GB-month is not (a task's object is deleted after its retention)",
    },
    per_1000_tasks_usd: costPer1000Tasks(perTask),
    per_1000_queries_usd: costPer1000Tasks(query),
  };
}

// ---------------------------------------------------------------------------
// Report

const f = (v, unit = "") => (v === null || v === undefined ? "n/a" : `${v}${unit}`);
const ok = (x) => x && !x.error;
const signed = (v) => (v === null || v === undefined ? "n/a" : v >= 0 ? `+${v}` : `${v}`);

function report(r) {
  const lines = [];
  const out = (s = "") => lines.push(s);
  out(
    `Benchmark ${r.started_at} (${r.machine.cpus} CPUs, ${r.machine.memory_gib} GiB, Node ${r.machine.node}) — ${r.provisional}`,
  );
  const modes = Object.keys(r.modes);
  if (!modes.length) {
    if (r.archive) out(r.archive.error ? `\nArchive: failed: ${r.archive.error}` : archiveReport(r.archive));
    return lines.join("\n");
  }
  const both = (label, pick) =>
    out(`  ${label.padEnd(44)} ${modes.map((m) => `${m}: ${pick(r.modes[m]) || "n/a"}`).join("   |   ")}`);
  out("\nLocal state (Durable Objects, D1, R2): tmpfs leaves out the local engine's per-write fsync");
  both("where", (m) => m.state);
  out("\nLatency, one connection, p50 / p99 ms (same Worker's GET /health as the baseline)");
  both("GET /health", (m) => ok(m.unloaded) && `${m.unloaded.health.p50} / ${m.unloaded.health.p99}`);
  both(
    "submit",
    (m) =>
      ok(m.unloaded) &&
      `${m.unloaded.submit.p50} / ${m.unloaded.submit.p99} (health ${signed(m.unloaded.submit.p50_over_health_ms)} / ${signed(m.unloaded.submit.p99_over_health_ms)})`,
  );
  const latency = (x) =>
    `${x.p50} / ${x.p99} (health ${signed(x.p50_over_health_ms)} / ${signed(x.p99_over_health_ms)})`;
  both("task query, finished task", (m) => ok(m.unloaded) && latency(m.unloaded.query));
  both(
    "task query, running task",
    (m) => ok(m.unloaded) && m.unloaded.query_running && latency(m.unloaded.query_running),
  );
  both(
    "simulator submit (upstream, reference)",
    (m) => ok(m.unloaded) && `${m.unloaded.simulator_submit.p50} / ${m.unloaded.simulator_submit.p99}`,
  );
  both(
    "simulator query (upstream, reference)",
    (m) => ok(m.unloaded) && `${m.unloaded.simulator_query.p50} / ${m.unloaded.simulator_query.p99}`,
  );
  const steps = (m) => ok(m.unloaded) && m.unloaded.submit_steps;
  const stepLine = (label, name) =>
    both(label, (m) => {
      const x = steps(m)?.[name];
      return x && (x.p50_ms === null ? `${x.mean_ms}` : `${x.mean_ms} / ${x.p50_ms}`);
    });
  out("\nWhere an unloaded submit waits, mean / p50 ms (development-only spans, GET /_debug/spans)");
  stepLine("in the Worker, submit (GET /health)", "worker_submit");
  stepLine("  GET /health in the Worker", "worker_health");
  stepLine("  routing and the moderation check", "route_and_moderation");
  stepLine("  D1 admission batch", "d1_admission");
  stepLine("  the task object's start, from the Worker", "task_object_start");
  stepLine("    creating the object and the RPC (mean)", "object_creation_and_rpc");
  stepLine("    the gate's slot (acquire RPC)", "gate_acquire");
  stepLine("    the upstream's answer", "upstream_submit");
  stepLine("    the gate's health record (RPC, after the answer)", "gate_health_record");
  stepLine("    accepted: machine, storage, publish", "task_accepted");
  const routed = (m) => ok(m.routing) && m.routing;
  out("\nRouting overhead per submit, one connection, p50 / p99 ms (pool of one vs a pool of three members)");
  both(
    "submit, pool of one (default)",
    (m) => routed(m) && `${m.routing.pool_of_one.p50} / ${m.routing.pool_of_one.p99}`,
  );
  both(
    "submit, pool of three",
    (m) =>
      routed(m) &&
      `${m.routing.pool_of_n.p50} / ${m.routing.pool_of_n.p99} (${m.routing.pool_sizes[1]} enabled)`,
  );
  both(
    "difference (three − one)",
    (m) =>
      routed(m) &&
      `${signed(m.routing.routing_overhead_p50_ms)} / ${signed(m.routing.routing_overhead_p99_ms)}`,
  );
  out(`\nThroughput, ${CONFIG.connections} connections × ${CONFIG.durationSeconds} s, 2xx/s (× /health)`);
  both("GET /health", (m) => ok(m.loaded) && `${m.loaded.health.ok_per_s}`);
  both(
    "submit",
    (m) =>
      ok(m.loaded) &&
      `${m.loaded.submit.ok_per_s} (×${m.loaded.submit.x_health}; non-2xx ${m.loaded.submit.non_2xx})`,
  );
  const throughput = (x) => `${x.ok_per_s} (×${x.x_health}; non-2xx ${x.non_2xx})`;
  both(
    "GET /health again, alternating with the queries",
    (m) => ok(m.loaded) && m.loaded.health_before_queries && `${m.loaded.health_before_queries.ok_per_s}`,
  );
  both("task query, finished task", (m) => ok(m.loaded) && throughput(m.loaded.query));
  both(
    "task query, running task",
    (m) => ok(m.loaded) && m.loaded.query_running && throughput(m.loaded.query_running),
  );
  both(
    "simulator submit / query (reference)",
    (m) => ok(m.loaded) && `${m.loaded.simulator_submit.ok_per_s} / ${m.loaded.simulator_query.ok_per_s}`,
  );
  const fl = (m) => ok(m.floor) && m.floor;
  out(
    "\nThe platform's floor (GET /_debug/floor: no routing, auth, logging or pricing; the lightest step of each kind), beside /health and the product in the same windows",
  );
  both(
    "1 connection, p50 / p99 ms: GET /health",
    (m) => fl(m) && `${m.floor.unloaded.health.p50} / ${m.floor.unloaded.health.p99}`,
  );
  both(
    "  submit floor: D1 trip → new object → upstream",
    (m) => fl(m) && latency(m.floor.unloaded.submit_floor),
  );
  both("  submit (the product, same windows)", (m) => fl(m) && latency(m.floor.unloaded.submit));
  both("  running-task query floor: one object call", (m) => fl(m) && latency(m.floor.unloaded.query_floor));
  both(
    "  running-task query (the product, same windows)",
    (m) => fl(m) && latency(m.floor.unloaded.query_running),
  );
  both(
    `${CONFIG.connections} connections, 2xx/s: /health / submit floor / query floor`,
    (m) =>
      fl(m) &&
      `${m.floor.loaded.health.ok_per_s} / ${m.floor.loaded.submit_floor.ok_per_s} (×${m.floor.loaded.submit_floor.x_health}) / ${m.floor.loaded.query_floor.ok_per_s} (×${m.floor.loaded.query_floor.x_health})`,
  );
  both(
    "  the bare probe (the runtime's own share), 2xx/s",
    (m) => fl(m) && `${m.floor.loaded.bare.ok_per_s}`,
  );
  both(
    "  ceiling through the Worker (× /health): submits / running-task queries",
    (m) =>
      fl(m) &&
      `×${m.floor.loaded.submit_floor.ceiling_x_health} / ×${m.floor.loaded.query_floor.ceiling_x_health} (1 / (1/health + 1/floor − 1/bare))`,
  );
  both(
    "CPU over /health, Worker's workerd: task-life floor / query floor",
    (m) =>
      fl(m) &&
      `${f(m.floor.cpu.worker?.life_floor_ms_over_health)} / ${f(m.floor.cpu.worker?.query_floor_ms_over_health)} ms (submit floor, a poll, a second D1 trip)`,
  );
  out("\nHosted results (asset_mode hosted): copy to R2 at SUCCESS, serving from R2");
  both(
    "copy per image, p50 / p99 ms",
    (m) => ok(m.assets) && `${m.assets.copy.per_image_ms.p50} / ${m.assets.copy.per_image_ms.p99}`,
  );
  both(
    "copy per task (files, bytes)",
    (m) =>
      ok(m.assets) &&
      `${m.assets.copy.per_task_ms.p50} ms (${m.assets.copy.files_per_task}, ${m.assets.copy.bytes_per_task} B)`,
  );
  both(
    "submit→SUCCESS p50, hosted / upstream mode",
    (m) => ok(m.assets) && `${m.assets.success.hosted_ms.p50} / ${m.assets.success.upstream_mode_ms.p50} ms`,
  );
  both(
    "GET /assets whole file, 2xx/s (× /health, MiB/s)",
    (m) =>
      ok(m.assets) &&
      `${m.assets.serving.whole_file.ok_per_s} (×${m.assets.serving.whole_file.x_health}, ${m.assets.serving.whole_file.mib_per_s})`,
  );
  both(
    "GET /assets Range 64 KiB, 2xx/s (× /health, MiB/s)",
    (m) =>
      ok(m.assets) &&
      `${m.assets.serving.range_64k.ok_per_s} (×${m.assets.serving.range_64k.x_health}, ${m.assets.serving.range_64k.mib_per_s})`,
  );
  both(
    "GET /health under the same load, 2xx/s",
    (m) => ok(m.assets) && `${m.assets.serving.health.ok_per_s}`,
  );
  out("\nD1 per operation (round trips / rows read / rows written, from D1's result meta)");
  const u = (x) => (x ? `${x.round_trips} / ${x.rows_read} / ${x.rows_written}` : "n/a");
  both(
    "submit (request + objects)",
    (m) => ok(m.d1) && `${u(m.d1.per_submit.total)} (request ${u(m.d1.per_submit.request)})`,
  );
  both(
    "poll (no change to record)",
    (m) => ok(m.d1) && `${u(m.d1.per_poll)} over ${m.d1.upstream_polls.in_9s} polls`,
  );
  both("settlement (incl. its final poll)", (m) => ok(m.d1) && u(m.d1.per_settlement_incl_final_poll));
  both("whole task life", (m) => ok(m.d1) && u(m.d1.per_task_life));
  both(
    "objects' own SQLite per task life (rows read / written)",
    (m) =>
      ok(m.d1) &&
      m.d1.object_storage_per_task_life &&
      `${m.d1.object_storage_per_task_life.rows_read} / ${m.d1.object_storage_per_task_life.rows_written} (${Object.entries(
        m.d1.object_storage_per_task_life.by_class,
      )
        .map(([name, c]) => `${name} ${c.rows_read} / ${c.rows_written}`)
        .join(", ")})`,
  );
  both(
    "task query",
    (m) => ok(m.d1) && `${u(m.d1.per_query.request)} (objects ${u(m.d1.per_query.objects)})`,
  );
  out("\nCPU ms per operation over GET /health (/proc utime+stime, 10 ms ticks, averaged over the requests)");
  both(
    "Worker's workerd: submit (whole task life)",
    (m) => ok(m.cpu) && f(m.cpu.worker?.submit_ms_over_health),
  );
  both(
    "Worker's workerd: task query, finished task",
    (m) => ok(m.cpu) && f(m.cpu.worker?.query_ms_over_health),
  );
  both(
    "Worker's workerd: task query, running task",
    (m) => ok(m.cpu) && f(m.cpu.worker?.query_running_ms_over_health),
  );
  both("Worker's workerd: GET /health itself", (m) => ok(m.cpu) && f(m.cpu.worker?.health_ms_per_request));
  both(
    "isolate only (V8): submit / query / running",
    (m) =>
      ok(m.cpu) &&
      m.cpu.isolate &&
      `${f(m.cpu.isolate.submit_ms_over_health)} / ${f(m.cpu.isolate.query_ms_over_health)} / ${f(m.cpu.isolate.query_running_ms_over_health)}`,
  );
  both(
    "isolate only (V8): /health (sampler period µs)",
    (m) =>
      ok(m.cpu) &&
      m.cpu.isolate &&
      `${f(m.cpu.isolate.health_ms_per_request)} (${f(m.cpu.isolate.sampler_period_us)})`,
  );
  both("tooling (wrangler + dev proxy): submit", (m) => ok(m.cpu) && f(m.cpu.tooling?.submit_ms_over_health));
  both("tooling (wrangler + dev proxy): query", (m) => ok(m.cpu) && f(m.cpu.tooling?.query_ms_over_health));
  both(
    "tooling (wrangler + dev proxy): running query",
    (m) => ok(m.cpu) && f(m.cpu.tooling?.query_running_ms_over_health),
  );
  out("\nSSE fan-out: one task, its subscribers; change (TaskObject's own stamp) → receipt here");
  both(
    "connected",
    (m) => ok(m.sse) && `${m.sse.connected}/${m.sse.subscribers} in ${m.sse.connect_seconds} s`,
  );
  both(
    "change → receipt p50 / p99 / max ms",
    (m) =>
      ok(m.sse) &&
      `${m.sse.change_to_receipt_ms.p50} / ${m.sse.change_to_receipt_ms.p99} / ${m.sse.change_to_receipt_ms.max} (${m.sse.events_measured} events)`,
  );
  both(
    "first receipt per event p50 / max ms",
    (m) => ok(m.sse) && `${m.sse.first_receipt_per_event_ms.p50} / ${m.sse.first_receipt_per_event_ms.max}`,
  );
  both(
    "spread first → last receipt p50 / max ms",
    (m) => ok(m.sse) && `${m.sse.receipt_spread_per_event_ms.p50} / ${m.sse.receipt_spread_per_event_ms.max}`,
  );
  both("memory per subscriber (workerd RSS)", (m) => ok(m.sse) && f(m.sse.kib_per_subscriber, " KiB"));
  both(
    "in-object broadcast (object's turn) p50 / max ms",
    (m) =>
      ok(m.sse) &&
      m.sse.in_object_broadcast_ms &&
      `${m.sse.in_object_broadcast_ms.p50} / ${m.sse.in_object_broadcast_ms.max} (to ${Math.max(0, ...m.sse.in_object_broadcast_subscribers)} subscribers)`,
  );
  const h = r.modes.lean?.history;
  if (ok(h)) {
    out("\nHistory (lean)");
    out(
      `  admissions/s, ${h.admissions_empty.concurrency} concurrent, ${h.admissions_empty.windows} alternating windows each: this run's database ${h.admissions_empty.per_s}, its copy with ${h.seeded_ledger_rows} more ledger rows ${h.admissions_seeded.per_s} → ×${h.seeded_over_empty} (goal ≥ 0.8)`,
    );
    out(
      `  D1 bytes per task: ${h.d1.bytes_per_task} (${h.d1.tasks} tasks, ${h.d1.empty_bytes} → ${h.d1.after_run_bytes} bytes)`,
    );
    out(
      `  days to 10 GB without archive: ${h.days_to_10gb_without_archive.at_100k_per_day} at 100 k tasks/day, ${h.days_to_10gb_without_archive.at_1m_per_day} at 1 M/day (with archive: see the archive section)`,
    );
  }
  if (r.archive) out(r.archive.error ? `\nArchive: failed: ${r.archive.error}` : archiveReport(r.archive));
  if (r.cost) {
    const c = r.cost.per_1000_tasks_usd;
    out(`\nInfra cost per 1,000 tasks, USD at list prices (${r.cost.prices.as_of}; see bench/prices.mjs)`);
    for (const [k, v] of Object.entries(c.lines)) out(`  ${k.padEnd(26)} ${v.toFixed(6)}`);
    out(
      `  ${"total".padEnd(26)} ${c.total.toFixed(6)}   (+ per 1,000 task queries: ${r.cost.per_1000_queries_usd.total.toFixed(6)})`,
    );
    out(`  assumptions: ${JSON.stringify(r.cost.assumptions.per_task)}`);
  }
  if (r.notes.length) {
    out("\nNotes:");
    for (const note of r.notes) out(`  - ${note}`);
  }
  return lines.join("\n");
}

// ---------------------------------------------------------------------------

let exitCode = 0;
try {
  if (!ONLY.length || ONLY.includes("archive")) {
    log("archive: seeding settled tasks into a migrated SQLite file");
    try {
      results.archive = archiveBench({ tasks: setting("BENCH_ARCHIVE_TASKS", 20_000) });
    } catch (error) {
      results.archive = { error: String(error?.message ?? error) };
    }
  }
  if (!STACKS) CONFIG.modes = [];
  if (CONFIG.modes.includes("lean")) {
    log("building the Workers (wrangler deploy --dry-run --outdir bench/.build)");
    buildWorkers(join(ROOT, "bench", ".build"));
  }
  for (const mode of CONFIG.modes) {
    if (!PORTS[mode]) throw new Error(`unknown mode ${mode} (lean, dev)`);
    try {
      await runMode(mode);
    } catch (error) {
      results.notes.push(`${mode} failed: ${String(error?.message ?? error)}`);
      log(`${mode} failed: ${error?.stack ?? error}`);
      if (current) await current.stop().catch(() => {});
      current = null;
    }
  }
  if (STACKS) results.cost = cost();
} catch (error) {
  exitCode = 1;
  results.error = String(error?.stack ?? error);
  log(`failed: ${results.error}`);
} finally {
  if (current) await current.stop().catch(() => {});
  clearTimeout(watchdog);
}
results.finished_at = new Date().toISOString();
const dir = join(ROOT, "bench", "results");
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, "latest.json"), `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(join(dir, "servers.log"), `${serverLog.slice(-20_000).join("\n")}\n`);
console.log(report(results));
console.log("\n(JSON: bench/results/latest.json)");
process.exit(exitCode);
