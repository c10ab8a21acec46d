import type { MiddlewareHandler } from "hono";
import { ApiError } from "../domain/errors";
import { scopeFor, scopesOf } from "../domain/scopes";
import type { AppEnv } from "../http";

/**
 * After tenantAuth on /v1/*: the scope the route needs (SCOPE_RULES in src/domain/scopes.ts)
 * must be one of the key's, else 403 `insufficient_scope` before the handler runs, so a
 * refused request writes nothing. A stream token (no key) only ever reaches the stream
 * routes, and only a key with the `stream` scope can mint one.
 */
export const requireScopes: MiddlewareHandler<AppEnv> = async (c, next) => {
  const principal = c.get("principal");
  const needed = scopeFor(c.req.method, c.req.path);
  if (principal && needed && !scopesOf(principal.key.scopes).includes(needed)) {
    throw new ApiError(403, "insufficient_scope", `this key lacks the '${needed}' scope`);
  }
  await next();
};
