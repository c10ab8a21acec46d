/**
 * Key scopes: which groups of tenant routes (/v1/*) a sub-key may call. A key without
 * scopes (NULL in D1) has all of them. `allowed_actions` narrows `generate` further.
 *
 * The whole mapping is the table below, checked by one middleware (src/middleware/scopes.ts):
 * a route added under /v1 must get a row here (test/routes/scopes.test.ts checks every
 * documented /v1 route against it).
 */
export const SCOPES = ["generate", "read", "stream", "webhooks", "account"] as const;
export type Scope = (typeof SCOPES)[number];

export const SCOPE_DESCRIPTIONS: Record<Scope, string> = {
  generate: "submit generations (POST /v1/midjourney/generations*); allowed_actions narrows it",
  read: "query tasks (GET /v1/midjourney/{id}, GET /v1/tasks/{id})",
  stream: "live status (the SSE routes) and minting stream tokens (POST /v1/stream-tokens)",
  webhooks: "manage webhook endpoints (/v1/webhooks*)",
  account: "the account, usage and ledger (/v1/account, /v1/usage, /v1/ledger*)",
};

interface ScopeRule {
  /** An HTTP method, or "*" for any. GET rules also cover HEAD. */
  method: string;
  /** A path: `:name` is one segment, a trailing `/*` is the path itself or anything below it. */
  path: string;
  scope: Scope;
}

/** First match wins: more specific paths come first. */
export const SCOPE_RULES: readonly ScopeRule[] = [
  { method: "POST", path: "/v1/midjourney/generations/*", scope: "generate" },
  { method: "GET", path: "/v1/midjourney/:task_id/events", scope: "stream" },
  { method: "OPTIONS", path: "/v1/midjourney/:task_id/events", scope: "stream" },
  { method: "GET", path: "/v1/midjourney/:task_id", scope: "read" },
  { method: "GET", path: "/v1/tasks/:task_id", scope: "read" },
  { method: "*", path: "/v1/events", scope: "stream" },
  { method: "POST", path: "/v1/stream-tokens", scope: "stream" },
  { method: "*", path: "/v1/webhooks/*", scope: "webhooks" },
  { method: "GET", path: "/v1/account", scope: "account" },
  { method: "GET", path: "/v1/usage", scope: "account" },
  { method: "*", path: "/v1/ledger/*", scope: "account" },
  { method: "*", path: "/v1/ledger.csv", scope: "account" },
];

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

const COMPILED = SCOPE_RULES.map((rule) => {
  const tail = rule.path.endsWith("/*");
  const base = tail ? rule.path.slice(0, -2) : rule.path;
  const source = base
    .split("/")
    .map((segment) => (segment.startsWith(":") ? "[^/]+" : escapeRegExp(segment)))
    .join("/");
  return { ...rule, pattern: new RegExp(`^${source}${tail ? "(?:/.*)?" : ""}$`) };
});

/** The scope a tenant request needs, or null for a path no rule covers (it answers 404 anyway). */
export function scopeFor(method: string, path: string): Scope | null {
  const verb = method.toUpperCase() === "HEAD" ? "GET" : method.toUpperCase();
  for (const rule of COMPILED) {
    if ((rule.method === "*" || rule.method === verb) && rule.pattern.test(path)) return rule.scope;
  }
  return null;
}

/** A key's scopes from its D1 column: NULL is every scope. */
export function scopesOf(stored: string | null): readonly Scope[] {
  if (stored === null) return SCOPES;
  try {
    const parsed: unknown = JSON.parse(stored);
    if (!Array.isArray(parsed)) return [];
    return SCOPES.filter((scope) => parsed.includes(scope));
  } catch {
    // A column that cannot be read grants nothing (fail closed); the CHECK in D1 prevents it.
    return [];
  }
}

/** What D1 stores: NULL for "all scopes", else the scopes in canonical order, without repeats. */
export function storedScopes(scopes: readonly Scope[] | null | undefined): string | null {
  if (!scopes) return null;
  return JSON.stringify(SCOPES.filter((scope) => scopes.includes(scope)));
}
