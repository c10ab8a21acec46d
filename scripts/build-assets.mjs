// Builds what the Worker serves as static assets (public/, see wrangler.toml [assets]) and
// does not keep in git:
// - the browser bundles copied out of node_modules, so /docs needs no CDN (public/vendor/);
// - the console's API module, generated from the OpenAPI document the Worker serves
//   (public/console/generated/api.js: the action list, key scopes and response typedefs).
// Run by wrangler itself ([build] in wrangler.toml: `wrangler dev`, `npm start`, `wrangler
// deploy`) and by `npm test`. Idempotent and quiet when nothing changed (wrangler dev re-runs
// it on every reload).
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";
import { renderConsoleApi } from "./console-api.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(ROOT, "package.json"));

/** package → files copied from it into public/vendor/<package>/ */
const VENDOR = {
  "swagger-ui-dist": ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"],
};

const same = (a, b) => {
  if (!existsSync(b)) return false;
  if (statSync(a).size !== statSync(b).size) return false;
  return readFileSync(a).equals(readFileSync(b));
};

for (const [pkg, files] of Object.entries(VENDOR)) {
  let copied = 0;
  const from = dirname(require.resolve(`${pkg}/package.json`));
  const version = JSON.parse(readFileSync(join(from, "package.json"), "utf8")).version;
  const to = join(ROOT, "public", "vendor", pkg);
  mkdirSync(to, { recursive: true });
  for (const file of files) {
    if (same(join(from, file), join(to, file))) continue;
    copyFileSync(join(from, file), join(to, file));
    copied++;
  }
  if (copied) console.log(`build-assets: ${pkg}@${version} → public/vendor/${pkg}/`);
}

/**
 * The OpenAPI document exactly as GET /openapi.json serves it: the app (src/app.ts) bundled
 * for Node with the `cloudflare:*` modules stubbed (only Durable Object base classes are
 * imported from them, and the document route touches no binding), then asked in-process.
 */
async function openApiDocument() {
  const outfile = join(ROOT, ".build", "openapi-app.mjs");
  await build({
    entryPoints: [join(ROOT, "src", "app.ts")],
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    outfile,
    logLevel: "error",
    plugins: [
      {
        name: "stub-cloudflare-modules",
        setup(esbuild) {
          esbuild.onResolve({ filter: /^cloudflare:/ }, (args) => ({ path: args.path, namespace: "stub" }));
          esbuild.onLoad({ filter: /.*/, namespace: "stub" }, () => ({
            contents: "export class DurableObject {} export class WorkerEntrypoint {} export const env = {};",
            loader: "js",
          }));
        },
      },
    ],
  });
  const { createApp } = await import(`${pathToFileURL(outfile).href}?at=${Date.now()}`);
  const log = console.log;
  console.log = () => {}; // the app logs one line per request
  try {
    // The app refuses every request while its required secrets are missing: placeholders here.
    const placeholders = {
      ADMIN_TOKEN: "build",
      UPSTREAM_API_KEY: "build",
      UPSTREAM_BASE_URL: "http://build.invalid",
    };
    const response = await createApp().request("/openapi.json", {}, placeholders);
    if (!response.ok) throw new Error(`GET /openapi.json answered ${response.status}`);
    return await response.json();
  } finally {
    console.log = log;
  }
}

const CONSOLE_API = join(ROOT, "public", "console", "generated", "api.js");
const consoleApi = renderConsoleApi(await openApiDocument());
if (!existsSync(CONSOLE_API) || readFileSync(CONSOLE_API, "utf8") !== consoleApi) {
  mkdirSync(dirname(CONSOLE_API), { recursive: true });
  writeFileSync(CONSOLE_API, consoleApi);
  console.log("build-assets: /openapi.json → public/console/generated/api.js");
}
