import { bodyLimit } from "hono/body-limit";
import { ApiError } from "./domain/errors";
import { newRequestId } from "./domain/ids";
import { ConfigurationError, configFrom } from "./env";
import { type AppContext, createRouter, errorResponse, toApiError } from "./http";
import { logEvent } from "./log";
import { requireAdmin, tenantAuth } from "./middleware/auth";
import { limitReads } from "./middleware/read-limit";
import { requireScopes } from "./middleware/scopes";
import {
  adminFinanceRoutes,
  adminTenantRoutes,
  adminUpstreamRoutes,
  adminWebhookRoutes,
} from "./routes/admin";
import { adminTasks } from "./routes/admin/tasks";
import { serveAssetRoute, serveCapabilityAssetRoute } from "./routes/assets/serve";
import { docs, documentBuiltInRoutes } from "./routes/docs";
import { accountRoutes, taskRoutes, webhookRoutes } from "./routes/v1";
import { generations } from "./routes/v1/generations/submit";
import { streams } from "./routes/v1/streams";

export const MAX_SUBMIT_BYTES = 72 * 1024 * 1024;
export const MAX_OTHER_BYTES = 1024 * 1024;

export function createApp() {
  const app = createRouter();

  // One structured log line per request, with its id (never a key or token).
  app.use("*", async (c, next) => {
    const requestId = newRequestId();
    const started = Date.now();
    c.set("requestId", requestId);
    try {
      await next();
    } finally {
      c.header("X-Request-Id", requestId);
      logEvent("request", {
        request_id: requestId,
        method: c.req.method,
        path: new URL(c.req.url).pathname,
        status: c.res.status,
        duration_ms: Date.now() - started,
        tenant_id: c.get("principal")?.tenant.id,
        key_id: c.get("principal")?.key.id,
        task_id: c.get("taskId"),
      });
    }
  });

  // A gateway missing a secret answers every request with one clear error, never with "" as a key.
  app.use("*", async (c, next) => {
    try {
      configFrom(c.env);
    } catch (error) {
      if (!(error instanceof ConfigurationError)) throw error;
      logEvent("configuration_error", {
        request_id: c.get("requestId"),
        variable: error.variable,
        message: error.message,
      });
      throw new ApiError("configuration_error", error.message);
    }
    await next();
  });

  // Limits before money: the largest legal submit is four 12 MiB images as base64 data URIs
  // (16 MiB each) plus small fields; everything else is small JSON.
  const tooLarge = (limit: string) => () => {
    throw new ApiError("payload_too_large", `body: the request body is larger than ${limit}`, {
      field: "body",
    });
  };
  app.use(
    "/v1/midjourney/generations",
    bodyLimit({ maxSize: MAX_SUBMIT_BYTES, onError: tooLarge("72 MiB") }),
  );
  app.use(
    "/v1/midjourney/generations/*",
    bodyLimit({ maxSize: MAX_SUBMIT_BYTES, onError: tooLarge("72 MiB") }),
  );
  app.use("*", async (c, next) => {
    if (c.req.path.startsWith("/v1/midjourney/generations")) return next();
    return bodyLimit({ maxSize: MAX_OTHER_BYTES, onError: tooLarge("1 MiB") })(c, next);
  });

  app.use("/admin/*", requireAdmin);
  app.use("/v1/*", tenantAuth, requireScopes, limitReads);

  const routers = [
    generations,
    streams,
    ...taskRoutes,
    ...accountRoutes,
    ...adminTenantRoutes,
    ...adminFinanceRoutes,
    ...webhookRoutes,
    ...adminWebhookRoutes,
    ...adminUpstreamRoutes,
    adminTasks,
    serveAssetRoute,
    serveCapabilityAssetRoute,
  ];
  for (const router of routers) app.route("/", router);
  // GET /docs (Swagger UI from the Worker's static assets) and GET /health.
  app.route("/", docs);
  documentBuiltInRoutes(app);

  app.openAPIRegistry.registerComponent("securitySchemes", "subKey", {
    type: "http",
    scheme: "bearer",
    description: "a tenant's sub-key (sk-mjg-…), used exactly like the upstream key",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "adminToken", {
    type: "http",
    scheme: "bearer",
    description: "the operator's ADMIN_TOKEN",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "streamToken", {
    type: "apiKey",
    in: "query",
    name: "token",
    description: "a short-lived stream token from POST /v1/stream-tokens, for browsers' EventSource",
  });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Midjourney edge gateway",
      version: "0.1.0",
      description:
        "Drop-in gateway in front of the upstream Midjourney API: sub-keys, exact billing, live status.",
    },
  });

  app.notFound((c) =>
    errorResponse(
      c as AppContext,
      new ApiError("not_found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`),
    ),
  );
  app.onError((error, c) => {
    const apiError = toApiError(error);
    if (apiError.status >= 500 && !(error instanceof ApiError)) {
      logEvent("unhandled_error", {
        request_id: c.get("requestId"),
        error: String(error),
        stack: (error as Error)?.stack,
      });
    }
    return errorResponse(c as AppContext, apiError);
  });
  return app;
}
