import type { MiddlewareHandler } from "hono";
import { ApiError } from "../domain/errors";
import { scopeFor } from "../domain/scopes";
import type { AppEnv } from "../http";
import { AbuseShield } from "./abuse-shield";

/**
 * Reads have their own per-key limit, apart from submits (whose per-minute limit is exact,
 * in D1, inside the admission batch): every tenant route but a submit counts here — task
 * queries, stream openings, stream tokens, account, usage, webhooks. A read costs no money,
 * so the limit is an abuse shield that adds no D1 write: the READ_LIMITER rate-limiting
 * binding (wrangler.toml; same limit and period as below), per key, or per tenant for an
 * operator-minted stream token. Open streams are not counted again: follow tasks live over
 * SSE rather than polling when a key needs more than READ_LIMIT a minute.
 */
export const READ_LIMIT = 1200;
export const READ_PERIOD_SECONDS = 60;
const reads = new AbuseShield(READ_LIMIT, READ_PERIOD_SECONDS);

/** For tests: every key starts with a fresh read window. */
export function forgetReadCounts(): void {
  reads.forget();
}

export const limitReads: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (scopeFor(c.req.method, c.req.path) === "generate") return next();
  const scope = c.get("scope");
  const who = `read:${scope.keyId ? `key:${scope.keyId}` : `tenant:${scope.tenantId}`}`;
  if (await reads.over(c.env.READ_LIMITER, who)) {
    const seconds = reads.retryAfterSeconds(who);
    throw new ApiError(
      "read_rate_limited",
      `this key made more than ${READ_LIMIT} reads in ${READ_PERIOD_SECONDS} s; retry in ${seconds} s, or follow tasks over SSE instead of polling`,
      { headers: { "Retry-After": String(seconds) } },
    );
  }
  await next();
};
