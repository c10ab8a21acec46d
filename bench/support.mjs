// Helpers for bench/run.mjs: HTTP calls, statistics, bounded load loops, process memory.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { loadavg } from "node:os";

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Wall-clock time in ms, comparable with Date.now() in workerd. (Not performance.now():
 * the monotonic clock drifts from the wall clock by ~1 ms per second here.)
 */
export const nowMs = () => Date.now();

/** Elapsed-time measurements use the monotonic clock, with sub-ms resolution. */
export const monoMs = () => performance.now();

export const round = (value, digits = 2) =>
  value === null || value === undefined || Number.isNaN(value) ? null : Number(value.toFixed(digits));

export const load1 = () => round(loadavg()[0], 2);

/** Nearest-rank percentile of an unsorted list (null when empty). */
export function percentile(values, p) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

export function summary(values, digits = 2) {
  if (!values.length) return { n: 0, p50: null, p99: null, mean: null, min: null, max: null };
  const sum = values.reduce((a, b) => a + b, 0);
  return {
    n: values.length,
    p50: round(percentile(values, 50), digits),
    p99: round(percentile(values, 99), digits),
    mean: round(sum / values.length, digits),
    min: round(Math.min(...values), digits),
    max: round(Math.max(...values), digits),
  };
}

/** counts of each distinct value, e.g. {"1": 40, "2": 3} */
export function histogram(values) {
  const counts = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

/** One JSON call; never throws on HTTP errors (status is in the result). */
export async function call(base, method, path, { auth, body, headers = {}, timeoutMs = 30_000 } = {}) {
  const init = { method, headers: { ...headers }, signal: AbortSignal.timeout(timeoutMs) };
  if (auth) init.headers.authorization = `Bearer ${auth}`;
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const started = monoMs();
  const response = await fetch(`${base}${path}`, init);
  const text = await response.text();
  const ms = monoMs() - started;
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {}
  return { status: response.status, headers: response.headers, json, text, ms };
}

/** Like call() but throws unless the status is the expected one. */
export async function must(expected, base, method, path, options) {
  const result = await call(base, method, path, options);
  if (result.status !== expected) {
    throw new Error(
      `${method} ${path}: expected ${expected}, got ${result.status}: ${result.text.slice(0, 300)}`,
    );
  }
  return result.json;
}

/**
 * A bounded closed-loop load: `concurrency` workers each send `request()` back to back
 * until `durationMs` has passed or `maxRequests` were started. Records each response's
 * completion time, status, latency and the x-d1-round-trips header when present.
 */
export async function closedLoop({ concurrency, durationMs, maxRequests, request }) {
  const samples = [];
  const errors = [];
  /** The first body seen for each status, to explain unexpected answers. */
  const bodies = {};
  const started = monoMs();
  const until = started + durationMs;
  let issued = 0;
  const worker = async () => {
    while (monoMs() < until && issued < maxRequests) {
      issued++;
      const t0 = monoMs();
      try {
        const response = await request();
        const rt = response.headers.get("x-d1-round-trips");
        const text = await response.text();
        if (!(response.status in bodies)) bodies[response.status] = text.slice(0, 300);
        const t1 = monoMs();
        samples.push({
          at: t1 - started,
          ms: t1 - t0,
          status: response.status,
          rt: rt === null ? null : Number(rt),
        });
      } catch (error) {
        errors.push(String(error?.cause?.code ?? error?.message ?? error));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { samples, errors, bodies, elapsedMs: monoMs() - started };
}

/** Responses of one status per whole second of a closedLoop run (partial last second dropped). */
export function perSecond(samples, status, elapsedMs) {
  const seconds = Math.max(1, Math.floor(elapsedMs / 1000));
  const buckets = new Array(seconds).fill(0);
  for (const sample of samples) {
    const second = Math.floor(sample.at / 1000);
    if (sample.status === status && second < seconds) buckets[second]++;
  }
  return buckets;
}

// ---------------------------------------------------------------------------
// Processes (Linux /proc)

function readProc(pid, file) {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return null;
  }
}

/** All live descendants of a pid: [{ pid, cmd }]. */
export function descendants(rootPid) {
  const children = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readProc(entry, "stat");
    if (!stat) continue;
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(Number(entry));
  }
  const found = [];
  const queue = [rootPid];
  while (queue.length) {
    const pid = queue.shift();
    for (const child of children.get(pid) ?? []) {
      const cmd = (readProc(child, "cmdline") ?? "").split("\0").join(" ").trim();
      found.push({ pid: child, cmd });
      queue.push(child);
    }
  }
  return found;
}

/** Resident set size of a process in KiB (null if it is gone). */
export function rssKiB(pid) {
  const status = readProc(pid, "status");
  const match = status && /VmRSS:\s+(\d+)\s+kB/.exec(status);
  return match ? Number(match[1]) : null;
}

/**
 * The workerd processes under one `wrangler dev`: the one listening on the dev port is
 * wrangler's proxy; the other one runs the Worker and its Durable Objects.
 */
export function workerdOf(wranglerPid, port) {
  const all = descendants(wranglerPid).filter((p) => /workerd\s+serve/.test(p.cmd));
  const proxy = all.find((p) => p.cmd.includes(`entry=127.0.0.1:${port} `));
  const runtime = all.filter((p) => p !== proxy);
  return { proxy: proxy?.pid ?? null, runtime: runtime.map((p) => p.pid) };
}

export const sumRss = (pids) => pids.reduce((total, pid) => total + (rssKiB(pid) ?? 0), 0);

/** Mean of a few RSS readings a little apart (smooths allocator and GC noise). */
export async function sampleRss(pids, samples = 3, gapMs = 400) {
  const readings = [];
  for (let i = 0; i < samples; i++) {
    readings.push(sumRss(pids));
    if (i < samples - 1) await sleep(gapMs);
  }
  return Math.round(readings.reduce((a, b) => a + b, 0) / readings.length);
}

// ---------------------------------------------------------------------------
// SSE subscribers (node:http: one socket each, no pooling limits)

/**
 * Opens one SSE stream and resolves once its first bytes (": connected") arrive, or on
 * failure. Every complete event is recorded as { id, status, progress, at } with `at` the
 * local receive time; `onEvent` sees each one.
 */
export function openSubscriber(http, agent, url, headers, { connectTimeoutMs = 30_000, onEvent } = {}) {
  const subscriber = {
    ok: false,
    status: null,
    error: null,
    events: [],
    ended: false,
    request: null,
    startedAt: nowMs(),
    connectedAt: null,
  };
  return new Promise((resolve) => {
    let settled = false;
    const settle = () => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        resolve(subscriber);
      }
    };
    const timer = setTimeout(() => {
      subscriber.error = "connect timeout";
      subscriber.request?.destroy();
      settle();
    }, connectTimeoutMs);
    const request = http.get(url, { agent, headers: { accept: "text/event-stream", ...headers } }, (res) => {
      subscriber.status = res.statusCode;
      if (res.statusCode !== 200) {
        subscriber.error = `HTTP ${res.statusCode}`;
        res.resume();
        settle();
        return;
      }
      res.setEncoding("utf8");
      let buffer = "";
      res.on("data", (chunk) => {
        const at = nowMs();
        if (!subscriber.ok) {
          subscriber.ok = true;
          subscriber.connectedAt = at;
          settle();
        }
        buffer += chunk;
        let end = buffer.indexOf("\n\n");
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = parseSseBlock(block, at);
          if (event) {
            subscriber.events.push(event);
            onEvent?.(event);
          }
          end = buffer.indexOf("\n\n");
        }
      });
      res.on("end", () => {
        subscriber.ended = true;
        subscriber.endedAt = nowMs();
      });
      res.on("error", (error) => {
        subscriber.error ??= String(error.code ?? error.message);
        subscriber.ended = true;
      });
    });
    subscriber.request = request;
    request.on("error", (error) => {
      subscriber.error ??= String(error.code ?? error.message);
      subscriber.ended = true;
      settle();
    });
  });
}

function parseSseBlock(block, at) {
  let id = null;
  let data = null;
  for (const line of block.split("\n")) {
    if (line.startsWith("id: ")) id = Number(line.slice(4));
    else if (line.startsWith("data: ")) data = line.slice(6);
  }
  if (id === null || data === null) return null;
  try {
    const task = JSON.parse(data);
    return { id, status: task.status, progress: task.progress, at };
  } catch {
    return { id, status: null, progress: null, at };
  }
}

/** TCP ports a process listens on (IPv4 loopback), from its socket inodes and /proc/net/tcp. */
export function listeningPorts(pid) {
  const inodes = new Set();
  let fds = [];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return [];
  }
  for (const fd of fds) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1]);
    } catch {}
  }
  const ports = [];
  for (const line of (readProc(pid, "net/tcp") ?? "").split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[3] === "0A" && inodes.has(fields[9])) ports.push(Number.parseInt(fields[1].split(":")[1], 16));
  }
  return ports;
}

/**
 * The socket of the process that runs the Worker itself (behind wrangler's dev proxy):
 * the listening port of `pid` that answers GET /health with 200.
 */
export async function workerSocket(pid) {
  for (const port of listeningPorts(pid)) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(3_000) });
      await response.arrayBuffer();
      if (response.status === 200) return `http://127.0.0.1:${port}`;
    } catch {}
  }
  return null;
}

/** CPU time (user + system) of processes in ms, from /proc/<pid>/stat (10 ms clock ticks). */
export function cpuMs(pids) {
  let ticks = 0;
  for (const pid of pids) {
    const stat = readProc(pid, "stat");
    if (!stat) continue;
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
  }
  return ticks * 10;
}

/**
 * Time the gateway's own isolate spends working, from V8's CPU sampler over the inspector.
 * All of a workerd process's isolates share one thread, and V8 takes a sample of an isolate
 * only while that isolate is entered, so (non-idle samples × the sampler's real period) is
 * the time this isolate ran: the Worker and its Durable Objects (their SQLite calls included),
 * which is what Workers bill as CPU. It leaves out the rest of the process: the local D1
 * engine (its own isolate and SQLite file; D1 is not Workers CPU in production), HTTP parsing
 * and the plumbing between isolates. Sampling costs the isolate a little: an upper bound.
 */
export async function isolateSampler(inspectorPort, titlePattern, intervalUs = 500) {
  const { WebSocket } = await import("ws");
  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json();
  const target = targets.find((t) => titlePattern.test(t.title ?? ""));
  if (!target) throw new Error(`no inspector target matches ${titlePattern}`);
  const socket = new WebSocket(target.webSocketDebuggerUrl, { maxPayload: 2 ** 30 });
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  let lastId = 0;
  const pending = new Map();
  socket.on("message", (data) => {
    const message = JSON.parse(data);
    pending.get(message.id)?.(message);
    pending.delete(message.id);
  });
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = ++lastId;
      pending.set(id, (message) =>
        message.error ? reject(new Error(`${method}: ${message.error.message}`)) : resolve(message.result),
      );
      socket.send(JSON.stringify({ id, method, params }));
    });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: intervalUs });
  const runs = new Map();
  return {
    /** Runs `work` under the sampler, kept under `label`. */
    async measure(label, work) {
      await send("Profiler.start");
      await work();
      const { profile } = await send("Profiler.stop");
      const idle = new Set(
        profile.nodes.filter((n) => n.callFrame.functionName === "(idle)").map((n) => n.id),
      );
      runs.set(label, {
        samples: profile.samples.filter((id) => !idle.has(id)).length,
        gaps: profile.timeDeltas.slice(1),
      });
    },
    /**
     * Busy ms per label. The sampler ticks later than asked under load, so the period is the
     * median gap between consecutive ticks (gaps under twice the asked interval) over every
     * run: only long busy stretches (a task's life) give many; a run of short requests rarely
     * gets two samples in one. Null without enough of them.
     */
    busyMs() {
      const ticks = [...runs.values()].flatMap((run) =>
        run.gaps.filter((gap) => gap > 0 && gap < 2 * intervalUs),
      );
      const periodUs = ticks.length >= 100 ? percentile(ticks, 50) : null;
      const busy = Object.fromEntries(
        [...runs].map(([label, run]) => [label, periodUs === null ? null : (run.samples * periodUs) / 1000]),
      );
      return { period_us: periodUs, ticks: ticks.length, busy };
    },
    close: () => socket.close(),
  };
}
