/**
 * One request straight through the app (not SELF), with bindings overridable per request
 * (e.g. a rate-limit binding removed) and D1 round trips counted by the development counter
 * (src/db/round-trip-counter.ts), so "no D1 read" is measured, not assumed.
 */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { createApp } from "../../src/app";
import { countRoundTrips } from "../../src/db/round-trip-counter";
import type { Env } from "../../src/env";

const app = createApp();

export interface Direct {
  key?: string;
  admin?: boolean;
  ip?: string;
  body?: unknown;
  env?: Partial<Env>;
  authorization?: string;
}

/** One request through the app, with D1 round trips counted; the body is read unless it streams. */
export async function direct(method: string, path: string, options: Direct = {}) {
  const counter = countRoundTrips(env.DB);
  const headers: Record<string, string> = {};
  if (options.key) headers.authorization = `Bearer ${options.key}`;
  if (options.admin) headers.authorization = "Bearer test-admin-token";
  if (options.authorization !== undefined) headers.authorization = options.authorization;
  if (options.ip) headers["cf-connecting-ip"] = options.ip;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const ctx = createExecutionContext();
  const response = await app.fetch(
    new Request(`http://gateway.test${path}`, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    }),
    { ...env, ...options.env, DB: counter.db } as Env,
    ctx,
  );
  let body: any = null;
  if ((response.headers.get("content-type") ?? "").includes("text/event-stream"))
    await response.body?.cancel();
  else {
    const text = await response.text();
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  await waitOnExecutionContext(ctx);
  return { status: response.status, body, headers: response.headers, trips: counter.count() };
}
