import type { MiddlewareHandler } from "hono";
import { ApiError } from "../domain/errors";
import { SCOPES, scopeFor, scopesOf } from "../domain/scopes";
import type { AppEnv } from "../http";

/**
 * After tenantAuth on /v1/*: the scope the route needs (SCOPE_RULES in src/domain/scopes.ts)
 * must be one of the key's, else 403 `insufficient_scope` before the handler runs, so a
 * refused request writes nothing. A path no rule covers needs every scope: a route added
 * without a rule fails closed for narrowed keys (and test/routes/scopes.test.ts fails).
 * A stream token (no key) only ever reaches the stream routes, and only a key with the
 * `stream` scope can mint one.
 */
export const requireScopes: MiddlewareHandler<AppEnv> = async (c, next) => {
  const principal = c.get("principal");
  if (principal) {
    const needed = scopeFor(c.req.method, c.req.path);
    const granted = scopesOf(principal.key.scopes);
    const missing = (needed ? [needed] : SCOPES).find((scope) => !granted.includes(scope));
    if (missing) throw new ApiError("insufficient_scope", `this key lacks the '${missing}' scope`);
  }
  await next();
};
