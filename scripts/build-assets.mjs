// Copies the browser bundles the Worker serves as static assets (public/, see wrangler.toml
// [assets]) out of node_modules, so /docs needs no CDN. Run by wrangler itself ([build] in
// wrangler.toml: `wrangler dev`, `npm start`, `wrangler deploy`) and by `npm test`.
// Idempotent and quiet when nothing changed (wrangler dev re-runs it on every reload).
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

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
