// `npm run bench`: starts ONE local stack (gateway + simulator under `wrangler dev`, fresh state
// under .wrangler/bench-state), measures the figures described in bench/README.md, prints a
// report and writes it as JSON to bench/results/latest.json. Traffic goes to 127.0.0.1 only;
// every loop is bounded in count and time; the servers started here are stopped at the end.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";
import { ROOT, startStack } from "../scripts/stack.mjs";
import {
  call,
  closedLoop,
  descendants,
  histogram,
  load1,
  must,
  nowMs,
  openSubscriber,
  percentile,
  perSecond,
  round,
  rssKiB,
  sampleRss,
  sleep,
  summary,
  workerdOf,
  workerSocket,
} from "./support.mjs";

const setting = (name, fallback) => {
  const value = Number(process.env[name]);
  return Number.isFinite(value) && value > 0 ? value : fallback;
};

const CONFIG = {
  port: setting("BENCH_PORT", 8887),
  durationSeconds: setting("BENCH_DURATION_S", 10),
  connections: setting("BENCH_CONNECTIONS", 10),
  admissionConcurrency: setting("BENCH_ADMISSION_CONCURRENCY", 50),
  pollTasks: setting("BENCH_POLL_TASKS", 20),
  pollTimeScale: 0.1,
  subscribers: setting("BENCH_SSE_SUBSCRIBERS", 1000),
  latencySamples: setting("BENCH_LATENCY_SAMPLES", 300),
};
const HARD_LIMIT_MS = 20 * 60_000;
/** The upstream key the gateway uses under startStack, and one of our own for direct calls. */
const SIM_KEY_GATEWAY = "sk-sim-local";
const SIM_KEY_DIRECT = "sk-sim-bench";
/** Simulated imagine (relax) duration: 100 s × time scale. */
const IMAGINE_RELAX_MS = 100_000;
/** POLL in src/domain/task-machine.ts: long tasks every 3 s + 0–2 s jitter. */
const POLL_MIN_MS = 3_000;
const POLL_MEAN_MS = 4_000;
const BIG_BALANCE = 1_000_000_000_000; // 1,000,000 USD in micro-USD
const RUN_TAG = Date.now().toString(36);

const log = (message) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);

const results = {
  started_at: new Date().toISOString(),
  machine: { cpus: cpus().length, memory_gib: round(totalmem() / 2 ** 30, 1), node: process.version },
  config: CONFIG,
  load_average_1m: {},
  notes: [],
};

let stack = null;
const started = [];
let reloads = 0;
const serverLog = [];
/** workerd pids of both servers at each phase boundary, to spot restarts. */
const workerdPids = {};

async function stopServers() {
  if (!stack) return;
  stack.stop();
  const until = Date.now() + 15_000;
  const alive = (pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  while (Date.now() < until && started.some(alive)) await sleep(250);
  // Only processes this run started (recorded by pid), and only if SIGTERM did not end them.
  for (const pid of started.filter(alive)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  stack = null;
}

const watchdog = setTimeout(() => {
  log(`hard time limit of ${HARD_LIMIT_MS / 60_000} min reached; stopping`);
  stopServers().finally(() => process.exit(2));
}, HARD_LIMIT_MS);
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    log(`${signal}: stopping the servers`);
    stopServers().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------

let G = "";
let S = "";
let ADMIN = "";

async function newKey(tenantId) {
  const key = await must(201, G, "POST", `/admin/tenants/${tenantId}/keys`, {
    auth: ADMIN,
    body: { name: "bench", rpm_limit: 100_000, max_inflight: 100_000 },
  });
  return key.key;
}

async function tenantWithKey(name, balance) {
  const tenant = await must(201, G, "POST", "/admin/tenants", { auth: ADMIN, body: { name } });
  await must(200, G, "PATCH", `/admin/tenants/${tenant.id}`, {
    auth: ADMIN,
    body: { max_inflight: 100_000 },
  });
  if (balance > 0) {
    await must(201, G, "POST", `/admin/tenants/${tenant.id}/topups`, {
      auth: ADMIN,
      body: { amount_micros: balance, reason: "bench" },
    });
  }
  return { tenantId: tenant.id, key: await newKey(tenant.id) };
}

const simConfig = (timeScale, key) =>
  must(200, S, "POST", "/_sim/config", { body: { time_scale: timeScale, key } });
const simStats = (key) => must(200, S, "GET", `/_sim/stats?key=${key}`);

async function submit(base, key, prompt, debug = false) {
  const result = await call(base, "POST", "/v1/midjourney/generations/imagine", {
    auth: key,
    body: { prompt },
    headers: debug ? { "x-debug-d1": "1" } : {},
  });
  if (result.status !== 200) throw new Error(`submit: ${result.status} ${result.text.slice(0, 300)}`);
  const rt = result.headers.get("x-d1-round-trips");
  return { taskId: result.json.data[0].task_id, rt: rt === null ? null : Number(rt), ms: result.ms };
}

async function query(base, key, taskId, debug = false) {
  const result = await call(base, "GET", `/v1/midjourney/${taskId}`, {
    auth: key,
    headers: debug ? { "x-debug-d1": "1" } : {},
  });
  if (result.status !== 200) throw new Error(`query: ${result.status} ${result.text.slice(0, 300)}`);
  const rt = result.headers.get("x-d1-round-trips");
  return { task: result.json, rt: rt === null ? null : Number(rt), ms: result.ms };
}

/** Waits (bounded) until a tenant has no task in flight, so the next phase starts quiet. */
async function drain(tenantId, timeoutMs = 180_000) {
  const until = Date.now() + timeoutMs;
  const t0 = Date.now();
  while (Date.now() < until) {
    // A busy D1 can make even this read slow: a failed or slow read just means "not yet".
    const tenant = await must(200, G, "GET", `/admin/tenants/${tenantId}`, { auth: ADMIN }).catch(() => null);
    if (tenant?.inflight === 0) {
      log(`  drained in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      await sleep(1_000);
      return true;
    }
    await sleep(1_000);
  }
  results.notes.push(`drain of ${tenantId} timed out after ${timeoutMs / 1000} s`);
  return false;
}

async function cannon(options) {
  const result = await autocannon({
    connections: CONFIG.connections,
    duration: CONFIG.durationSeconds,
    ...options,
  });
  const codes = Object.fromEntries(
    Object.entries(result.statusCodeStats ?? {}).map(([k, v]) => [k, v.count]),
  );
  return {
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    mean_ms: round(result.latency.mean),
    ok_per_s: round(result["2xx"] / result.duration, 1),
    responses: result.requests.total,
    ok: result["2xx"],
    status_codes: codes,
    errors: result.errors,
    timeouts: result.timeouts,
    seconds: round(result.duration, 2),
  };
}

const ratio = (a, b) => (a && b ? round(a / b, 2) : null);

// ---------------------------------------------------------------------------
// Issue 3 (part 1): D1 round trips per submit and per query, cold and warm caches.

async function roundTrips(main) {
  log("issue 3: D1 round trips (waiting 11 s so the key cache (10 s) and price cache (5 s) expire)");
  await sleep(11_000);
  const coldKey = await newKey(main.tenantId);
  const coldBoth = await submit(G, coldKey, "bench rt cold", true);
  const coldKey2 = await newKey(main.tenantId);
  const coldKeyOnly = await submit(G, coldKey2, "bench rt cold key", true);
  const warm = [];
  for (let i = 0; i < 30; i++) warm.push((await submit(G, coldKey, `bench rt warm ${i}`, true)).rt);
  // A steady sequential stream over 12 s crosses a key-cache expiry and two price-cache expiries.
  const steady = [];
  const until = Date.now() + 12_000;
  while (Date.now() < until && steady.length < 400) {
    steady.push((await submit(G, main.key, `bench rt steady ${steady.length}`, true)).rt);
    await sleep(50);
  }
  const queryKey = await newKey(main.tenantId);
  const queryCold = await query(G, queryKey, coldBoth.taskId, true);
  const queryWarm = [];
  for (let i = 0; i < 30; i++) queryWarm.push((await query(G, queryKey, coldBoth.taskId, true)).rt);
  await drain(main.tenantId);
  return {
    submit: {
      cold_key_and_prices: coldBoth.rt,
      cold_key_warm_prices: coldKeyOnly.rt,
      warm: histogram(warm),
      steady_12s: {
        submits: steady.length,
        mean: round(steady.reduce((a, b) => a + b, 0) / steady.length, 3),
        histogram: histogram(steady),
      },
    },
    query: { cold_key: queryCold.rt, warm: histogram(queryWarm) },
  };
}

// ---------------------------------------------------------------------------
// Issue 2: gateway vs direct-to-simulator submit and query.

async function gatewayVsSimulator(main, queryTargets) {
  const submitBody = JSON.stringify({ prompt: "bench load" });
  const json = { "content-type": "application/json" };
  log(`issue 2: gateway submit, ${CONFIG.connections} connections × ${CONFIG.durationSeconds} s`);
  results.load_average_1m.issue2_start = load1();
  const gatewaySubmit = await cannon({
    url: `${G}/v1/midjourney/generations/imagine`,
    method: "POST",
    headers: { ...json, authorization: `Bearer ${main.key}` },
    body: submitBody,
  });
  await drain(main.tenantId);
  log("issue 2: direct simulator submit");
  const simSubmit = await cannon({
    url: `${S}/v1/midjourney/generations/imagine`,
    method: "POST",
    headers: { ...json, authorization: `Bearer ${SIM_KEY_DIRECT}` },
    body: submitBody,
  });
  log("issue 2: gateway query (TaskObject)");
  const gatewayQuery = await cannon({
    url: `${G}/v1/midjourney/${queryTargets.gateway}`,
    headers: { authorization: `Bearer ${main.key}` },
  });
  log("issue 2: direct simulator query");
  const simQuery = await cannon({
    url: `${S}/v1/midjourney/${queryTargets.simulator}`,
    headers: { authorization: `Bearer ${SIM_KEY_DIRECT}` },
  });
  const compare = (gateway, simulator) => ({
    gateway,
    simulator,
    ratio_gateway_over_simulator: {
      p50: ratio(gateway.p50_ms, simulator.p50_ms),
      p99: ratio(gateway.p99_ms, simulator.p99_ms),
      throughput: ratio(gateway.ok_per_s, simulator.ok_per_s),
    },
  });
  return { submit: compare(gatewaySubmit, simSubmit), query: compare(gatewayQuery, simQuery) };
}

// ---------------------------------------------------------------------------
// Issue 3 (part 2): admissions per second against one local D1.

async function admissions(main, broke) {
  const c = CONFIG.admissionConcurrency;
  const durationMs = CONFIG.durationSeconds * 1000;
  const fire = (key) => () =>
    fetch(`${G}/v1/midjourney/generations/imagine`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json", "x-debug-d1": "1" },
      body: JSON.stringify({ prompt: "bench admission" }),
      signal: AbortSignal.timeout(30_000),
    });
  const describe = (run, status) => {
    const buckets = perSecond(run.samples, status, run.elapsedMs);
    const rts = run.samples.filter((s) => s.status === status && s.rt !== null).map((s) => s.rt);
    return {
      concurrency: c,
      seconds: round(run.elapsedMs / 1000, 1),
      per_second: buckets,
      mean_per_s: round(buckets.reduce((a, b) => a + b, 0) / buckets.length, 1),
      best_second: Math.max(...buckets),
      latency_ms: summary(
        run.samples.filter((s) => s.status === status).map((s) => s.ms),
        1,
      ),
      status_codes: histogram(run.samples.map((s) => s.status)),
      client_errors: run.errors.length,
      client_error_kinds: histogram(run.errors),
      sample_bodies: Object.fromEntries(
        Object.entries(run.bodies).filter(([code]) => Number(code) !== status),
      ),
      d1_round_trips: {
        mean: round(rts.reduce((a, b) => a + b, 0) / (rts.length || 1), 3),
        histogram: histogram(rts),
      },
    };
  };
  log(`issue 3: admissions, ${c} concurrent submits for ${CONFIG.durationSeconds} s (count 200s per second)`);
  results.load_average_1m.issue3_start = load1();
  const admitted = await closedLoop({
    concurrency: c,
    durationMs,
    maxRequests: 50_000,
    request: fire(main.key),
  });
  await drain(main.tenantId);
  log(`issue 3: admission batches without the upstream (a tenant with no balance: every batch fails → 402)`);
  const refused = await closedLoop({
    concurrency: c,
    durationMs,
    maxRequests: 50_000,
    request: fire(broke.key),
  });
  return { admitted_200: describe(admitted, 200), refused_402_no_upstream: describe(refused, 402) };
}

// ---------------------------------------------------------------------------
// Issue 4: upstream polls per finished task; TaskObject query vs a trivial route.

async function pollsPerTask(main) {
  const n = CONFIG.pollTasks;
  const durationMs = IMAGINE_RELAX_MS * CONFIG.pollTimeScale;
  log(
    `issue 4: ${n} imagine tasks at simulator time scale ${CONFIG.pollTimeScale} (${durationMs / 1000} s each)`,
  );
  results.load_average_1m.issue4_start = load1();
  await simConfig(CONFIG.pollTimeScale, SIM_KEY_GATEWAY);
  const tasks = [];
  for (let i = 0; i < n; i++) {
    const prompt = `bench-poll ${RUN_TAG} #${i}`;
    const submitted = await submit(G, main.key, prompt);
    tasks.push({ prompt, taskId: submitted.taskId, submittedAt: Date.now(), finishedAt: null, status: null });
  }
  const pollerLatency = [];
  const pollerErrors = [];
  const until = Date.now() + 180_000;
  while (Date.now() < until && tasks.some((t) => t.finishedAt === null)) {
    await sleep(1_000);
    await Promise.all(
      tasks
        .filter((t) => t.finishedAt === null)
        .map(async (t) => {
          try {
            const { task, ms } = await query(G, main.key, t.taskId);
            pollerLatency.push(ms);
            if (["SUCCESS", "FAILURE", "CANCEL"].includes(task.status)) {
              t.status = task.status;
              t.finishedAt = Date.now();
            }
          } catch (error) {
            pollerErrors.push(String(error?.name === "TimeoutError" ? "timeout" : (error?.message ?? error)));
          }
        }),
    );
  }
  const unfinished = tasks.filter((t) => t.finishedAt === null).length;
  const upstream = await must(200, S, "GET", `/_sim/tasks?key=${SIM_KEY_GATEWAY}`);
  const byPrompt = new Map(upstream.map((u) => [u.prompt, u.id]));
  for (const t of tasks) t.upstreamId = byPrompt.get(t.prompt) ?? null;
  const first = await simStats(SIM_KEY_GATEWAY);
  log("issue 4: waiting 8 s to see whether polls continue after the terminal state");
  await sleep(8_000);
  const later = await simStats(SIM_KEY_GATEWAY);
  const polls = tasks.map((t) => first.queries_by_task[t.upstreamId] ?? 0);
  const after = tasks.map(
    (t) => (later.queries_by_task[t.upstreamId] ?? 0) - (first.queries_by_task[t.upstreamId] ?? 0),
  );

  log(
    `issue 4: GET /v1/midjourney/{id} (TaskObject) vs GET /health, ${CONFIG.latencySamples} each, interleaved`,
  );
  const taskId = tasks[0].taskId;
  const viaObject = [];
  const health = [];
  // A well-formed id nobody owns: the Worker wakes a brand-new TaskObject (its constructor
  // creates its SQLite tables), which answers 404: the cost of a first touch of an object.
  const freshObject = [];
  const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  const unknownId = () =>
    `task_01${Array.from({ length: 24 }, () => crockford[Math.floor(Math.random() * 32)]).join("")}`;
  for (let i = 0; i < CONFIG.latencySamples; i++) {
    health.push((await call(G, "GET", "/health")).ms);
    viaObject.push((await query(G, main.key, taskId)).ms);
    if (i < 100) {
      const fresh = await call(G, "GET", `/v1/midjourney/${unknownId()}`, { auth: main.key });
      if (fresh.status === 404) freshObject.push(fresh.ms);
    }
  }
  const targetMean = durationMs / POLL_MEAN_MS + 2;
  const targetMax = durationMs / POLL_MIN_MS + 2;
  return {
    tasks: n,
    unfinished,
    statuses: histogram(tasks.map((t) => t.status)),
    upstream_duration_s: durationMs / 1000,
    observed_submit_to_terminal_s: summary(
      tasks.filter((t) => t.finishedAt).map((t) => (t.finishedAt - t.submittedAt) / 1000),
      1,
    ),
    status_poller: { get_latency_ms: summary(pollerLatency, 1), errors: histogram(pollerErrors) },
    polls_per_task: { ...summary(polls), histogram: histogram(polls) },
    target: {
      mean_interval: round(targetMean, 2),
      min_interval: round(targetMax, 2),
      formula: "duration / poll interval + 2 (interval 3–5 s, mean 4 s)",
    },
    within_target: summary(polls).mean !== null && summary(polls).mean <= targetMax,
    polls_in_8s_after_terminal: after.reduce((a, b) => a + b, 0),
    unmatched_upstream_ids: tasks.filter((t) => !t.upstreamId).length,
    query_latency_ms: {
      task_object: summary(viaObject, 2),
      health: summary(health, 2),
      fresh_task_object_404: summary(freshObject, 2),
      ratio_p50: ratio(percentile(viaObject, 50), percentile(health, 50)),
    },
  };
}

// ---------------------------------------------------------------------------
// Issue 5: many SSE subscribers of one task.

async function sseFanOut(sse, gatewayPid) {
  const n = CONFIG.subscribers;
  const sink = `bench-sse-${RUN_TAG}`;
  log(`issue 5: ${n} SSE subscribers of one task`);
  results.load_average_1m.issue5_start = load1();
  await must(201, G, "POST", `/admin/tenants/${sse.tenantId}/webhooks`, {
    auth: ADMIN,
    body: { url: `${S}/_sim/webhooks/${sink}`, events: "all" },
  });
  // Scale 1: the task would take 100 s, so it stays open while everyone connects; the
  // simulator clock is then advanced to make the changes happen.
  await simConfig(1, SIM_KEY_GATEWAY);
  const { taskId } = await submit(G, sse.key, `bench-sse ${RUN_TAG}`);
  await sleep(2_000);
  const procs = workerdOf(gatewayPid, CONFIG.port);
  const runtimeBefore = await sampleRss(procs.runtime);
  const proxyBefore = procs.proxy ? await sampleRss([procs.proxy]) : null;
  const everyWorkerd = () =>
    Object.fromEntries(
      stack.children.flatMap((child) =>
        descendants(child.pid)
          .filter((p) => /workerd\s+serve/.test(p.cmd))
          .map((p) => [p.pid, round((rssKiB(p.pid) ?? 0) / 1024, 1)]),
      ),
    );
  const allBefore = everyWorkerd();

  const agent = new http.Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
  // Subscribers connect to the Worker's own socket, behind wrangler's local dev proxy: that
  // proxy (absent in production) does not cope with 1,000 long-lived streams (connect
  // timeouts, ~0.7 MiB per stream, events held back for tens of seconds). BENCH_SSE_VIA=proxy
  // goes through it anyway.
  let base = G;
  let via = "the gateway port (wrangler's dev proxy)";
  if (process.env.BENCH_SSE_VIA !== "proxy") {
    for (const pid of procs.runtime) {
      const direct = await workerSocket(pid);
      if (direct) {
        base = direct;
        via = `the Worker's own socket ${direct}, bypassing wrangler's dev proxy`;
        break;
      }
    }
  }
  log(`  subscribers connect to ${via}`);
  const url = `${base}/v1/midjourney/${taskId}/events`;
  const headers = { authorization: `Bearer ${sse.key}` };
  // A sliding window of 50 connection attempts in flight until all n have been tried.
  const subscribers = [];
  let next = 0;
  const connectStart = nowMs();
  const connectUntil = connectStart + 90_000;
  const opener = async () => {
    while (next < n && nowMs() < connectUntil) {
      const index = next++;
      const subscriber = await openSubscriber(http, agent, url, headers, { connectTimeoutMs: 30_000 });
      subscriber.index = index;
      subscribers.push(subscriber);
    }
  };
  await Promise.all(Array.from({ length: 50 }, opener));
  const connectedAll = nowMs();
  const connected = subscribers.filter((s) => s.ok);
  log(`  ${connected.length}/${n} connected in ${((connectedAll - connectStart) / 1000).toFixed(1)} s`);
  await sleep(2_000);
  const procsAfter = workerdOf(gatewayPid, CONFIG.port);
  const runtimeAfter = await sampleRss(procsAfter.runtime);
  const proxyAfter = procsAfter.proxy ? await sampleRss([procsAfter.proxy]) : null;
  const allAfter = everyWorkerd();
  const restarted = procsAfter.runtime.join() !== procs.runtime.join();

  log("  driving the task: natural progress, then the simulator clock +40 s (IN_PROGRESS), +80 s (SUCCESS)");
  await sleep(6_000);
  await must(200, S, "POST", "/_sim/clock", { body: { advance_ms: 40_000, key: SIM_KEY_GATEWAY } });
  await sleep(8_000);
  await must(200, S, "POST", "/_sim/clock", { body: { advance_ms: 80_000, key: SIM_KEY_GATEWAY } });
  const endUntil = Date.now() + 30_000;
  while (Date.now() < endUntil && connected.some((s) => !s.ended)) await sleep(250);
  const stillOpen = connected.filter((s) => !s.ended).length;
  await sleep(2_000);
  const runtimeClosed = await sampleRss(workerdOf(gatewayPid, CONFIG.port).runtime);
  for (const s of subscribers) s.request?.destroy();
  agent.destroy();

  // When each change happened: the TaskObject stamps every published change with the time
  // it applied it (Date.now() in the object right after the upstream poll answered) and
  // sends that as the webhook's "timestamp"; the webhook id carries the event's seq.
  let hooks = [];
  const hookUntil = Date.now() + 20_000;
  while (Date.now() < hookUntil) {
    hooks = await must(200, S, "GET", `/_sim/webhooks/${sink}`);
    if (hooks.some((h) => JSON.parse(h.body).data?.status === "SUCCESS")) break;
    await sleep(500);
  }
  const changedAt = new Map();
  for (const hook of hooks) {
    const seq = Number(/_(\d+)_[^_]+$/.exec(hook.headers["webhook-id"] ?? "")?.[1]);
    const body = JSON.parse(hook.body);
    if (Number.isFinite(seq) && !changedAt.has(seq)) {
      changedAt.set(seq, {
        at: Date.parse(body.timestamp),
        hookAt: hook.at,
        status: body.data.status,
        progress: body.data.progress,
      });
    }
  }
  const lastConnect = Math.max(...connected.map((s) => s.connectedAt));
  const events = [];
  const all = [];
  const statusChanges = [];
  let previousStatus = null;
  for (const [seq, change] of [...changedAt.entries()].sort((a, b) => a[0] - b[0])) {
    const isStatusChange = change.status !== previousStatus;
    previousStatus = change.status;
    if (change.at <= lastConnect) continue; // only changes that happened after everyone was connected
    const delays = [];
    for (const s of connected) {
      const received = s.events.find((e) => e.id === seq);
      if (received) delays.push(received.at - change.at);
    }
    all.push(...delays);
    if (isStatusChange) statusChanges.push(...delays);
    const times = connected.map((sub) => sub.events.find((e) => e.id === seq)?.at).filter(Boolean);
    events.push({
      seq,
      changed_at: new Date(change.at).toISOString(),
      webhook_received_after_ms: typeof change.hookAt === "number" ? change.hookAt - change.at : null,
      first_received_at: times.length ? new Date(Math.min(...times)).toISOString() : null,
      last_received_at: times.length ? new Date(Math.max(...times)).toISOString() : null,
      status: change.status,
      progress: change.progress,
      received_by: delays.length,
      delay_ms: summary(delays, 1),
    });
  }
  return {
    subscribers: n,
    via,
    connected: connected.length,
    connect_failures: histogram(subscribers.filter((s) => !s.ok).map((s) => s.error ?? "unknown")),
    connect_seconds: round((connectedAll - connectStart) / 1000, 1),
    connect_latency_ms: summary(
      connected.map((sub) => sub.connectedAt - sub.startedAt),
      0,
    ),
    first_failures: subscribers
      .filter((sub) => !sub.ok)
      .slice(0, 5)
      .map((sub) => ({
        index: sub.index,
        after_s: round((sub.startedAt - connectStart) / 1000, 1),
        error: sub.error,
      })),
    last_connected_at: new Date(lastConnect).toISOString(),
    delivery_delay_ms: summary(all, 1),
    status_change_delay_ms: summary(statusChanges, 1),
    events,
    streams_open_30s_after_success: stillOpen,
    memory: {
      runtime_pids: procs.runtime,
      proxy_pid: procs.proxy,
      runtime_rss_mib: {
        before: round(runtimeBefore / 1024, 1),
        connected: round(runtimeAfter / 1024, 1),
        after_close: round(runtimeClosed / 1024, 1),
      },
      proxy_rss_mib:
        proxyBefore === null
          ? null
          : { before: round(proxyBefore / 1024, 1), connected: round(proxyAfter / 1024, 1) },
      runtime_kib_per_subscriber: connected.length
        ? round((runtimeAfter - runtimeBefore) / connected.length, 1)
        : null,
      proxy_kib_per_subscriber:
        connected.length && proxyBefore !== null
          ? round((proxyAfter - proxyBefore) / connected.length, 1)
          : null,
      runtime_restarted: restarted,
      every_workerd_rss_mib: { before: allBefore, connected: allAfter },
    },
  };
}

// ---------------------------------------------------------------------------
// Report

const ok = (x) => Boolean(x) && !x.error;
/** {"1": 27, "2": 3} → "1 (27×), 2 (3×)" */
const counts = (histogramOf) =>
  Object.entries(histogramOf)
    .map(([value, n]) => `${value} (${n}×)`)
    .join(", ");
const fmt = (v, unit = "") => (v === null || v === undefined ? "n/a" : `${v}${unit}`);

function report(r) {
  const lines = [];
  const out = (s = "") => lines.push(s);
  const i2 = r.issue2;
  const i3 = r.issue3;
  const i4 = r.issue4;
  const i5 = r.issue5;
  out("=".repeat(78));
  out(`Benchmark — ${r.started_at} — ${r.machine.cpus} CPUs, Node ${r.machine.node}, local wrangler dev`);
  out(`load average (1 min) at phase starts: ${JSON.stringify(r.load_average_1m)}`);
  out("=".repeat(78));
  if (ok(i2)) {
    out(
      `\nIssue 2 — gateway vs direct to the simulator (${CONFIG.connections} connections, ${CONFIG.durationSeconds} s each)`,
    );
    for (const [name, x] of [
      ["submit (POST …/generations/imagine)", i2.submit],
      ["query  (GET /v1/midjourney/{id})", i2.query],
    ]) {
      out(`  ${name}`);
      out(
        `    gateway:   p50 ${fmt(x.gateway.p50_ms, " ms")}, p99 ${fmt(x.gateway.p99_ms, " ms")}, ${fmt(x.gateway.ok_per_s)} ok/s  (codes ${JSON.stringify(x.gateway.status_codes)}, errors ${x.gateway.errors})`,
      );
      out(
        `    simulator: p50 ${fmt(x.simulator.p50_ms, " ms")}, p99 ${fmt(x.simulator.p99_ms, " ms")}, ${fmt(x.simulator.ok_per_s)} ok/s  (codes ${JSON.stringify(x.simulator.status_codes)}, errors ${x.simulator.errors})`,
      );
      const q = x.ratio_gateway_over_simulator;
      out(
        `    gateway / simulator: p50 ×${fmt(q.p50)}, p99 ×${fmt(q.p99)}, throughput ×${fmt(q.throughput)}`,
      );
    }
  }
  const rt = i3?.round_trips;
  if (ok(rt) || ok(i3?.admissions)) out("\nIssue 3 — D1");
  if (ok(rt)) {
    out("  round trips per submit (x-d1-round-trips):");
    out(
      `    cold key + cold price table: ${rt.submit.cold_key_and_prices}; cold key, warm prices: ${rt.submit.cold_key_warm_prices}`,
    );
    out(`    warm (30 in a row): ${JSON.stringify(rt.submit.warm)}  {round trips: count}`);
    out(
      `    steady 12 s sequential (${rt.submit.steady_12s.submits} submits): mean ${rt.submit.steady_12s.mean}, ${JSON.stringify(rt.submit.steady_12s.histogram)}`,
    );
    out("    target: 1 admission batch + ≤1 key read (cache 10 s) + occasional price-table read (cache 5 s)");
    out(`  round trips per query: cold key ${rt.query.cold_key}; warm ${JSON.stringify(rt.query.warm)}`);
  }
  if (ok(i3?.admissions)) {
    for (const [name, a] of [
      ["admissions (200) per second, full submit path", i3.admissions.admitted_200],
      ["admission batches per second without upstream (402 path)", i3.admissions.refused_402_no_upstream],
    ]) {
      out(`  ${name}, ${a.concurrency} concurrent for ${a.seconds} s:`);
      out(
        `    mean ${a.mean_per_s}/s, best second ${a.best_second}/s; per second: ${a.per_second.join(" ")}`,
      );
      out(
        `    latency p50 ${fmt(a.latency_ms.p50, " ms")}, p99 ${fmt(a.latency_ms.p99, " ms")}; codes ${JSON.stringify(a.status_codes)}; client errors ${a.client_errors}`,
      );
      out(
        `    D1 round trips per request under load: mean ${a.d1_round_trips.mean} ${JSON.stringify(a.d1_round_trips.histogram)}`,
      );
      for (const [code, body] of Object.entries(a.sample_bodies)) out(`    a ${code} answer: ${body}`);
      if (a.client_errors) out(`    client errors: ${JSON.stringify(a.client_error_kinds)}`);
    }
  }
  if (ok(i4)) {
    out(
      `\nIssue 4 — upstream polls per finished task (${i4.tasks} imagine tasks, ${i4.upstream_duration_s} s upstream each)`,
    );
    out(
      `  statuses ${JSON.stringify(i4.statuses)}, unfinished ${i4.unfinished}, unmatched upstream ids ${i4.unmatched_upstream_ids}`,
    );
    out(
      `  submit → terminal seen by a 1 s GET poller: p50 ${i4.observed_submit_to_terminal_s.p50} s, max ${i4.observed_submit_to_terminal_s.max} s`,
    );
    const g = i4.status_poller;
    out(
      `  status GETs during the run: p50 ${g.get_latency_ms.p50} ms, p99 ${g.get_latency_ms.p99} ms, max ${g.get_latency_ms.max} ms; errors ${JSON.stringify(g.errors)}`,
    );
    const p = i4.polls_per_task;
    out(
      `  polls per task: mean ${p.mean}, min ${p.min}, max ${p.max}; ${JSON.stringify(p.histogram)} {polls: tasks}`,
    );
    out(
      `  target: ${i4.upstream_duration_s}/4 + 2 = ${i4.target.mean_interval} (mean interval), ≤ ${i4.target.min_interval} (3 s interval) → ${i4.within_target ? "within target" : "ABOVE target"}`,
    );
    out(`  polls in the 8 s after the terminal state: ${i4.polls_in_8s_after_terminal} (should be 0)`);
    const q = i4.query_latency_ms;
    out(
      `  unloaded latency: GET task (TaskObject) p50 ${q.task_object.p50} ms, p99 ${q.task_object.p99} ms; GET /health p50 ${q.health.p50} ms, p99 ${q.health.p99} ms (p50 ×${q.ratio_p50})`,
    );
    out(
      `  first touch of a new TaskObject (GET of an unknown id → 404): p50 ${q.fresh_task_object_404.p50} ms, p99 ${q.fresh_task_object_404.p99} ms`,
    );
  }
  if (ok(i5)) {
    out(`\nIssue 5 — ${i5.subscribers} SSE subscribers of one task`);
    out(`  via ${i5.via}`);
    out(
      `  connected ${i5.connected}/${i5.subscribers} in ${i5.connect_seconds} s (50 attempts at a time; each took p50 ${i5.connect_latency_ms.p50} ms, p99 ${i5.connect_latency_ms.p99} ms); failures ${JSON.stringify(i5.connect_failures)}`,
    );
    out(
      "  method: change time = the TaskObject's own time stamp of the change (sent as the 'timestamp' of the",
    );
    out(
      "  webhook it emits for the same event seq); receipt = Date.now() when the chunk reached this process;",
    );
    out("  only changes made after the last subscriber had connected count.");
    out(
      `  delay from the change (TaskObject timestamp) to receipt, all events × subscribers: p50 ${fmt(i5.delivery_delay_ms.p50, " ms")}, p99 ${fmt(i5.delivery_delay_ms.p99, " ms")}, max ${fmt(i5.delivery_delay_ms.max, " ms")} (n=${i5.delivery_delay_ms.n})`,
    );
    out(
      `  status changes only: p50 ${fmt(i5.status_change_delay_ms.p50, " ms")}, p99 ${fmt(i5.status_change_delay_ms.p99, " ms")} (n=${i5.status_change_delay_ms.n})`,
    );
    for (const e of i5.events) {
      out(
        `    seq ${e.seq} ${e.status} ${e.progress}: received by ${e.received_by}, p50 ${e.delay_ms.p50} ms, p99 ${e.delay_ms.p99} ms, max ${e.delay_ms.max} ms (its webhook arrived after ${fmt(e.webhook_received_after_ms, " ms")})`,
      );
    }
    const m = i5.memory;
    out(
      `  RSS of the workerd process that runs the Worker and its Durable Objects (delta / subscribers = an upper bound for the TaskObject's share):`,
    );
    out(
      `    ${m.runtime_rss_mib.before} → ${m.runtime_rss_mib.connected} MiB connected → ${m.runtime_rss_mib.after_close} MiB after close; ${fmt(m.runtime_kib_per_subscriber, " KiB")} per subscriber`,
    );
    if (m.proxy_rss_mib)
      out(
        `  wrangler proxy workerd RSS: ${m.proxy_rss_mib.before} → ${m.proxy_rss_mib.connected} MiB; ${fmt(m.proxy_kib_per_subscriber, " KiB")} per subscriber (local dev only${i5.via.includes("bypassing") ? "; not on the streams' path" : ""})`,
      );
    out(
      `  streams still open 30 s after SUCCESS: ${i5.streams_open_30s_after_success}; runtime restarted: ${m.runtime_restarted}`,
    );
  }
  if (r.notes.length) {
    out("\nNotes:");
    for (const note of r.notes) out(`  - ${note}`);
  }
  return lines.join("\n");
}

function markdown(r) {
  const rows = [];
  const row = (...cells) => rows.push(`| ${cells.join(" | ")} |`);
  row("Measure (local `wrangler dev`, one run)", "Result", "Comparison / target");
  row("---", "---", "---");
  if (ok(r.issue2)) {
    const s = r.issue2.submit;
    const q = r.issue2.query;
    row(
      `Submit latency p50 / p99 (${CONFIG.connections} conns)`,
      `${s.gateway.p50_ms} / ${s.gateway.p99_ms} ms`,
      `simulator direct ${s.simulator.p50_ms} / ${s.simulator.p99_ms} ms (×${s.ratio_gateway_over_simulator.p50} / ×${s.ratio_gateway_over_simulator.p99})`,
    );
    row(
      "Submit throughput",
      `${s.gateway.ok_per_s} /s`,
      `simulator direct ${s.simulator.ok_per_s} /s (×${s.ratio_gateway_over_simulator.throughput})`,
    );
    row(
      `Query latency p50 / p99 (${CONFIG.connections} conns)`,
      `${q.gateway.p50_ms} / ${q.gateway.p99_ms} ms`,
      `simulator direct ${q.simulator.p50_ms} / ${q.simulator.p99_ms} ms (×${q.ratio_gateway_over_simulator.p50} / ×${q.ratio_gateway_over_simulator.p99})`,
    );
    row(
      "Query throughput",
      `${q.gateway.ok_per_s} /s`,
      `simulator direct ${q.simulator.ok_per_s} /s (×${q.ratio_gateway_over_simulator.throughput})`,
    );
  }
  const a = r.issue3?.admissions;
  const rt = r.issue3?.round_trips;
  if (ok(a)) {
    row(
      `Admissions per second, one local D1 (${a.admitted_200.concurrency} concurrent)`,
      `mean ${a.admitted_200.mean_per_s}, best ${a.admitted_200.best_second}`,
      `admission batch alone (402 path, no upstream): mean ${a.refused_402_no_upstream.mean_per_s}, best ${a.refused_402_no_upstream.best_second}`,
    );
  }
  if (ok(rt)) {
    row(
      "D1 round trips per submit",
      `cold ${rt.submit.cold_key_and_prices}, warm ${counts(rt.submit.warm)}, steady mean ${rt.submit.steady_12s.mean}`,
      "1 batch + ≤1 key read + occasional price read",
    );
    row(
      "D1 round trips per query",
      `cold ${rt.query.cold_key}, warm ${counts(rt.query.warm)}`,
      "≤1 key read",
    );
  }
  if (ok(r.issue4)) {
    const p = r.issue4;
    row(
      `Upstream polls per finished imagine (${p.upstream_duration_s} s upstream)`,
      `mean ${p.polls_per_task.mean} (${p.polls_per_task.min}–${p.polls_per_task.max})`,
      `target ${p.target.mean_interval} (≤ ${p.target.min_interval})`,
    );
    row("Polls after the terminal state (8 s)", `${p.polls_in_8s_after_terminal}`, "0");
    row(
      "GET task via TaskObject vs GET /health, p50 / p99 (unloaded)",
      `${p.query_latency_ms.task_object.p50} / ${p.query_latency_ms.task_object.p99} ms`,
      `${p.query_latency_ms.health.p50} / ${p.query_latency_ms.health.p99} ms`,
    );
  }
  if (ok(r.issue5)) {
    const e = r.issue5;
    row(
      `SSE: ${e.connected} subscribers of one task, change → receipt p50 / p99`,
      `${e.delivery_delay_ms.p50} / ${e.delivery_delay_ms.p99} ms`,
      `status changes only ${e.status_change_delay_ms.p50} / ${e.status_change_delay_ms.p99} ms`,
    );
    row(
      "SSE memory per subscriber (workerd RSS delta)",
      `${e.memory.runtime_kib_per_subscriber} KiB`,
      e.via.includes("bypassing")
        ? `streams bypassed wrangler's dev proxy (it still grew ${e.memory.proxy_kib_per_subscriber ?? "n/a"} KiB per subscriber)`
        : `+ ${e.memory.proxy_kib_per_subscriber ?? "n/a"} KiB in wrangler's dev proxy`,
    );
  }
  return rows.join("\n");
}

// ---------------------------------------------------------------------------

function snapshotPids(label) {
  if (!stack) return;
  workerdPids[label] = stack.children.flatMap((child) =>
    descendants(child.pid)
      .filter((p) => /workerd\s+serve/.test(p.cmd))
      .map((p) => p.pid),
  );
}

async function main() {
  const persistTo = join(ROOT, ".wrangler", "bench-state");
  rmSync(persistTo, { recursive: true, force: true });
  const adminToken = `bench-admin-${RUN_TAG}`;
  log(`starting the stack on 127.0.0.1:${CONFIG.port} (simulator :${CONFIG.port + 1}), state ${persistTo}`);
  results.load_average_1m.before_start = load1();
  stack = await startStack({
    port: CONFIG.port,
    simulatorPort: CONFIG.port + 1,
    persistTo,
    adminToken,
    timeScale: 0,
    quiet: true,
  });
  const gatewayChild = stack.children.at(-1);
  // The servers' own output goes to bench/results/servers.log (the report stays readable).
  const labels = stack.children.length > 1 ? ["simulator", "gateway"] : ["gateway"];
  for (const [i, child] of stack.children.entries()) {
    started.push(child.pid);
    for (const stream of [child.stdout, child.stderr]) {
      stream.on("data", (chunk) => {
        const text = chunk.toString();
        if (/Reloading local server/.test(text)) reloads++;
        const stamp = new Date().toISOString().slice(11, 23);
        for (const line of text.split("\n"))
          if (line.trim()) serverLog.push(`${stamp} [${labels[i]}] ${line}`);
      });
    }
  }
  await sleep(3_000); // let wrangler finish spawning its workerd processes
  for (const child of stack.children) started.push(...descendants(child.pid).map((p) => p.pid));
  G = stack.gatewayUrl;
  S = stack.simulatorUrl;
  ADMIN = adminToken;
  if (!S) throw new Error(".dev.vars points at a real upstream; the benchmark needs the simulator");

  log("setup: tenants and keys, simulator time scale 0 (tasks end at their first poll)");
  const main = await tenantWithKey("bench-main", BIG_BALANCE);
  const broke = await tenantWithKey("bench-no-balance", 0);
  const sse = await tenantWithKey("bench-sse", BIG_BALANCE);
  await simConfig(0, SIM_KEY_GATEWAY);
  await simConfig(0, SIM_KEY_DIRECT);

  log("warm-up");
  const warmTasks = [];
  for (let i = 0; i < 10; i++) {
    warmTasks.push((await submit(G, main.key, `bench warm-up ${i}`)).taskId);
    await submit(S, SIM_KEY_DIRECT, `bench warm-up ${i}`);
    await call(G, "GET", "/health");
  }
  const simTask = (await submit(S, SIM_KEY_DIRECT, "bench query target")).taskId;
  for (let i = 0; i < 10; i++) {
    await query(G, main.key, warmTasks[0]);
    await query(S, SIM_KEY_DIRECT, simTask);
  }
  await drain(main.tenantId);

  // Each phase is independent: one that fails is recorded and the next one still runs.
  const only = (process.env.BENCH_ONLY ?? "").split(",").filter(Boolean);
  const phase = async (name, run) => {
    if (only.length && !only.some((o) => name.startsWith(o))) return { error: "skipped (BENCH_ONLY)" };
    snapshotPids(`before ${name}`);
    try {
      return await run();
    } catch (error) {
      log(`${name} failed: ${error?.stack ?? error}`);
      results.notes.push(`${name} failed: ${String(error?.message ?? error)}`);
      await drain(main.tenantId).catch(() => {});
      return { error: String(error?.message ?? error) };
    }
  };
  results.issue3 = { round_trips: await phase("issue 3 round trips", () => roundTrips(main)) };
  results.issue2 = await phase("issue 2", () =>
    gatewayVsSimulator(main, { gateway: warmTasks[0], simulator: simTask }),
  );
  results.issue3.admissions = await phase("issue 3 admissions", () => admissions(main, broke));
  results.issue4 = await phase("issue 4", () => pollsPerTask(main));
  results.issue5 = await phase("issue 5", () => sseFanOut(sse, gatewayChild.pid));
  snapshotPids("end");
  const distinct = new Set(Object.values(workerdPids).map((pids) => pids.join()));
  results.workerd_pids = workerdPids;
  if (distinct.size > 1)
    results.notes.push("a workerd process was replaced during the run (see workerd_pids)");
  results.load_average_1m.end = load1();
  results.wrangler_reloads_during_run = reloads;
  if (reloads)
    results.notes.push(`wrangler reloaded the Worker ${reloads} time(s) during the run (files changed)`);
  if (results.load_average_1m.before_start > results.machine.cpus)
    results.notes.push(
      "the machine was already busy before the run (load average > CPUs): figures are noisy",
    );
}

let exitCode = 0;
try {
  await main();
} catch (error) {
  exitCode = 1;
  results.error = String(error?.stack ?? error);
  log(`failed: ${results.error}`);
} finally {
  log("stopping the servers");
  await stopServers();
  clearTimeout(watchdog);
}
results.finished_at = new Date().toISOString();
const dir = join(ROOT, "bench", "results");
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, "latest.json"), `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(join(dir, "servers.log"), `${serverLog.slice(-20_000).join("\n")}\n`);
console.log(report(results));
console.log("\nMarkdown for the README:\n");
console.log(markdown(results));
console.log(`\n(JSON: bench/results/latest.json)`);
process.exit(exitCode);
