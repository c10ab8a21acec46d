#!/usr/bin/env node
/**
 * Rewrites `new ApiError(status, "code", …)` (the old signature, also split over lines) to
 * `new ApiError("code", …)`: the status now comes from the table in src/domain/error-codes.ts.
 * Where the table answers a code under another status through a variant (`shownAs`), the
 * variant is named instead, so the answer stays byte for byte the same:
 *   new ApiError(409, "key_revoked", …)                 → new ApiError("revoked_key_is_final", …)
 *   new ApiError(c ? 422 : 400, "upstream_rejected", …)  → new ApiError(c ? "upstream_unprocessable" : "upstream_rejected", …)
 *   new ApiError(e.status, e.code, …)                    → ApiError.fromWire(e.status, e.code, …)
 * A (status, code) pair the table does not have is left as it is and reported (exit code 1).
 *
 * Usage: node scripts/codemods/api-error-code.mjs [files or folders…]   (default: src)
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const TABLE_FILE = new URL("../../src/domain/error-codes.ts", import.meta.url);

/** kind → { status, wire } read from the table's source (one `name: { … }` entry each). */
function readTable() {
  const source = readFileSync(TABLE_FILE, "utf8");
  const body = source.slice(source.indexOf("export const ERROR_CODES"));
  const table = new Map();
  for (const [, kind, fields] of body.matchAll(/^ {2}(\w+): \{([^}]*)\}/gm)) {
    const status = Number(/status: (\d{3})/.exec(fields)?.[1]);
    const wire = /shownAs: "(\w+)"/.exec(fields)?.[1] ?? kind;
    table.set(kind, { status, wire });
  }
  if (table.size === 0) throw new Error(`no entries found in ${TABLE_FILE.pathname}`);
  return table;
}

const table = readTable();
const problems = [];

function kindFor(status, code, where) {
  const kinds = [...table].filter(([, entry]) => entry.status === status && entry.wire === code);
  if (kinds.length === 1) return kinds[0][0];
  problems.push(`${where}: ${status} "${code}" is not in the table`);
  return null;
}

const lineOf = (text, index) => text.slice(0, index).split("\n").length;

function rewrite(text, file) {
  const where = (index) => `${file}:${lineOf(text, index)}`;
  // Literal status: `new ApiError(<ws>409,<ws>"code"` → `new ApiError(<ws>"kind"`.
  let out = text.replace(/new ApiError\((\s*)(\d{3})\s*,\s*"(\w+)"/g, (match, space, status, code, index) => {
    const kind = kindFor(Number(status), code, where(index));
    return kind ? `new ApiError(${space}"${kind}"` : match;
  });
  // A choice between two literal statuses.
  out = out.replace(
    /new ApiError\((\s*)([^,()?]+?)\s*\?\s*(\d{3})\s*:\s*(\d{3})\s*,\s*"(\w+)"/g,
    (match, space, condition, yes, no, code, index) => {
      const yesKind = kindFor(Number(yes), code, where(index));
      const noKind = kindFor(Number(no), code, where(index));
      if (!yesKind || !noKind) return match;
      return `new ApiError(${space}${condition} ? "${yesKind}" : "${noKind}"`;
    },
  );
  // An error rebuilt from another one's wire form.
  out = out.replace(
    /new ApiError\((\s*)([\w.]+)\.status(\s*,\s*)\2\.code\b/g,
    "ApiError.fromWire($1$2.status$3$2.code",
  );
  // Anything else still passing a status first.
  for (const match of out.matchAll(
    /new ApiError\(\s*(\d{3}|[\w.]+\.status\s*,|[^,"]*\?\s*\d{3}\s*:|[A-Za-z_$][\w.$]*\s*,\s*"\w+"\s*,)/g,
  )) {
    problems.push(`${file}:${lineOf(out, match.index)}: left as is: ${match[0].replace(/\s+/g, " ")}`);
  }
  return out;
}

function* sourceFiles(path) {
  if (statSync(path).isDirectory()) {
    for (const name of readdirSync(path)) {
      if (name === "node_modules") continue;
      yield* sourceFiles(join(path, name));
    }
  } else if (/\.(ts|tsx|mts)$/.test(path)) {
    yield path;
  }
}

const roots = process.argv.slice(2);
let changed = 0;
for (const root of roots.length ? roots : ["src"]) {
  for (const file of sourceFiles(root)) {
    const text = readFileSync(file, "utf8");
    if (!text.includes("ApiError(")) continue;
    const out = rewrite(text, file);
    if (out !== text) {
      writeFileSync(file, out);
      changed++;
      console.log(`rewrote ${file}`);
    }
  }
}
console.log(`${changed} file(s) rewritten`);
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
