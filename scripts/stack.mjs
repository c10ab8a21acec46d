// Starts the gateway (and, unless a real upstream is configured, the simulator) with
// `wrangler dev`. Used by `npm start`, the benchmarks and the end-to-end tests.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const WRANGLER = join(ROOT, "node_modules", ".bin", "wrangler");

export function readDevVars(file = join(ROOT, ".dev.vars")) {
  if (!existsSync(file)) return {};
  const vars = {};
  for (const line of readFileSync(file, "utf8").split(/\r?\n/)) {
    const match = /^\s*([A-Z0-9_]+)\s*=\s*"?(.*?)"?\s*$/.exec(line);
    if (match) vars[match[1]] = match[2];
  }
  return vars;
}

/** Secrets `npm start` generates into .dev.vars when they are missing (never committed). */
const GENERATED = {
  ADMIN_TOKEN: () => `adm_${randomBytes(24).toString("hex")}`,
  // Required outside development; generated here so local runs sign like production does.
  STREAM_TOKEN_SECRET: () => randomBytes(32).toString("hex"),
  // Signs hosted result links (/assets/…); needed once a tenant is in `hosted` mode.
  ASSET_SIGNING_SECRET: () => randomBytes(32).toString("hex"),
};

/** Creates .dev.vars with a generated ADMIN_TOKEN and STREAM_TOKEN_SECRET, or adds the missing ones. */
export function ensureDevVars(file = join(ROOT, ".dev.vars")) {
  if (existsSync(file)) {
    const vars = readDevVars(file);
    const missing = Object.keys(GENERATED).filter((name) => !vars[name]);
    if (!missing.length) return { vars, created: false };
    const lines = missing.map((name) => `${name}="${GENERATED[name]()}"`);
    writeFileSync(file, `${readFileSync(file, "utf8").trimEnd()}\n${lines.join("\n")}\n`);
    return { vars: readDevVars(file), created: true };
  }
  writeFileSync(
    file,
    [
      "# Local secrets for `npm start` (never commit this file).",
      `ADMIN_TOKEN="${GENERATED.ADMIN_TOKEN()}"`,
      `STREAM_TOKEN_SECRET="${GENERATED.STREAM_TOKEN_SECRET()}"`,
      `ASSET_SIGNING_SECRET="${GENERATED.ASSET_SIGNING_SECRET()}"`,
      "# Point the gateway at a real upstream instead of the simulator:",
      '# UPSTREAM_BASE_URL="https://upstream.example.com"',
      '# UPSTREAM_API_KEY="sk-..."',
      "",
    ].join("\n"),
  );
  return { vars: readDevVars(file), created: true };
}

function run(args, options = {}) {
  const result = spawnSync(WRANGLER, args, {
    cwd: ROOT,
    stdio: options.quiet ? "pipe" : "inherit",
    env: process.env,
  });
  if (result.status !== 0) {
    throw new Error(`wrangler ${args.join(" ")} failed:\n${result.stdout ?? ""}${result.stderr ?? ""}`);
  }
}

/** Resolves once `url` answers below 500; fails if the server exits or the time runs out. */
export async function waitFor(url, timeoutMs, child) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`${url}: the server exited with code ${child.exitCode}`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(3_000) });
      await response.arrayBuffer();
      if (response.status < 500) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} did not come up within ${timeoutMs} ms`);
}

/** `wrangler dev` on 127.0.0.1 with `args`; its output goes to `onOutput(text, isError)`. */
export function wranglerDev(args, onOutput) {
  const child = spawn(
    WRANGLER,
    ["dev", "--ip", "127.0.0.1", "--show-interactive-dev-session=false", ...args],
    {
      cwd: ROOT,
      env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  child.stdout.on("data", (chunk) => onOutput(chunk.toString(), false));
  child.stderr.on("data", (chunk) => onOutput(chunk.toString(), true));
  return child;
}

function devServer(args, label, quiet) {
  const prefix = (text) =>
    text
      .split("\n")
      .filter((l) => l.trim())
      .map((l) => `[${label}] ${l}`)
      .join("\n");
  return wranglerDev(args, (text, isError) => {
    if (!quiet) (isError ? console.error : console.log)(prefix(text));
  });
}

/**
 * @param {{ port?: number, simulatorPort?: number, persistTo?: string, timeScale?: number,
 *           quiet?: boolean, adminToken?: string, extraVars?: Record<string,string> }} options
 */
export async function startStack(options = {}) {
  const port = options.port ?? 8787;
  const simulatorPort = options.simulatorPort ?? port + 1;
  const persist = options.persistTo ? ["--persist-to", options.persistTo] : [];
  const devVars = options.adminToken ? {} : ensureDevVars().vars;
  const adminToken = options.adminToken ?? devVars.ADMIN_TOKEN;
  const realUpstream = Boolean(devVars.UPSTREAM_BASE_URL && devVars.UPSTREAM_API_KEY);

  run(["d1", "migrations", "apply", "DB", "--local", ...persist], { quiet: options.quiet });

  const children = [];
  // Local runs are development: loopback webhook URLs are allowed, debug headers work.
  const vars = ["--var", "ENVIRONMENT:development", "--var", `PUBLIC_BASE_URL:http://127.0.0.1:${port}`];
  if (!realUpstream) {
    const simulator = devServer(
      [
        "-c",
        "simulator/wrangler.toml",
        "--port",
        String(simulatorPort),
        "--inspector-port",
        String(simulatorPort + 10_000),
        "--var",
        `SIM_TIME_SCALE:${options.timeScale ?? 0.02}`,
        ...persist,
      ],
      "simulator",
      options.quiet,
    );
    children.push(simulator);
    vars.push(
      "--var",
      `UPSTREAM_BASE_URL:http://127.0.0.1:${simulatorPort}`,
      "--var",
      "UPSTREAM_API_KEY:sk-sim-local",
    );
  }
  if (options.adminToken) vars.push("--var", `ADMIN_TOKEN:${options.adminToken}`);
  for (const [name, value] of Object.entries(options.extraVars ?? {})) vars.push("--var", `${name}:${value}`);
  const gateway = devServer(
    ["--port", String(port), "--inspector-port", String(port + 10_000), ...vars, ...persist],
    "gateway",
    options.quiet,
  );
  children.push(gateway);

  const stop = () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
  };
  try {
    if (!realUpstream) await waitFor(`http://127.0.0.1:${simulatorPort}/_sim/stats`, 60_000, children[0]);
    await waitFor(`http://127.0.0.1:${port}/health`, 60_000, gateway);
  } catch (error) {
    stop();
    throw error;
  }
  return {
    gatewayUrl: `http://127.0.0.1:${port}`,
    simulatorUrl: realUpstream ? null : `http://127.0.0.1:${simulatorPort}`,
    upstreamUrl: realUpstream ? devVars.UPSTREAM_BASE_URL : `http://127.0.0.1:${simulatorPort}`,
    adminToken,
    children,
    stop,
  };
}
