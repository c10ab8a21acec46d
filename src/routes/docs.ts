import { SwaggerUI } from "@hono/swagger-ui";
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { type AppEnv, createRouter } from "../http";

/**
 * GET /docs: Swagger UI over /openapi.json. Its JavaScript and CSS are static assets of this
 * Worker (public/vendor/swagger-ui-dist/, copied from node_modules by scripts/build-assets.mjs),
 * so the page works without internet; the CSP below forbids loading anything from elsewhere.
 */
export const docs = createRouter();

const meta = { tags: ["Meta"] };
const html = (description: string) => ({
  description,
  content: { "text/html": { schema: z.string() } },
});

/** Where the Worker's static assets serve the Swagger UI bundle (see scripts/build-assets.mjs). */
export const SWAGGER_UI_BASE = "/vendor";

function docsPage(): string {
  const ui = SwaggerUI({
    url: "/openapi.json",
    baseUrl: SWAGGER_UI_BASE,
    // No badge calling the public validator; no credentials kept in localStorage.
    validatorUrl: "none",
    persistAuthorization: false,
    deepLinking: true,
    docExpansion: "list",
    filter: true,
    displayRequestDuration: true,
    defaultModelsExpandDepth: 0,
  });
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Midjourney edge gateway · API docs</title>
    <link rel="icon" href="data:," />
  </head>
  <body>
    <p style="margin:8px 16px;font:14px system-ui,sans-serif">
      <a href="/console/">Operator console</a> · <a href="/openapi.json">openapi.json</a>
    </p>
    ${ui}
  </body>
</html>`;
}

let page: { body: string; csp: string } | null = null;

/** The page and a CSP that allows exactly its own inline scripts (by hash) and same-origin assets. */
async function docsPageWithCsp() {
  if (page) return page;
  const body = docsPage();
  const hashes: string[] = [];
  for (const match of body.matchAll(/<script>([\s\S]*?)<\/script>/g)) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(match[1]));
    hashes.push(`'sha256-${btoa(String.fromCharCode(...new Uint8Array(digest)))}'`);
  }
  const csp = [
    "default-src 'self'",
    `script-src 'self' ${hashes.join(" ")}`,
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
  page = { body, csp };
  return page;
}

docs.openapi(
  createRoute({
    method: "get",
    path: "/docs",
    ...meta,
    summary: "interactive API documentation (Swagger UI, served by this Worker, no CDN)",
    responses: { 200: html("the documentation page") },
  }),
  async (c) => {
    const { body, csp } = await docsPageWithCsp();
    c.header("Content-Security-Policy", csp);
    c.header("Referrer-Policy", "no-referrer");
    c.header("X-Content-Type-Options", "nosniff");
    return c.html(body, 200);
  },
);

docs.openapi(
  createRoute({
    method: "get",
    path: "/health",
    ...meta,
    summary: "liveness probe",
    responses: {
      200: {
        description: "the Worker is up",
        content: { "application/json": { schema: z.object({ ok: z.literal(true) }) } },
      },
    },
  }),
  (c) => c.json({ ok: true as const }, 200),
);

/**
 * Routes whose handlers are not declared with createRoute: the document itself (served by
 * app.doc31) and the CORS preflights of the browser streams. Listed here so the document
 * covers every route the app serves (test/openapi checks that against app.routes).
 */
export function documentBuiltInRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openAPIRegistry.registerPath({
    method: "get",
    path: "/openapi.json",
    ...meta,
    summary: "this OpenAPI 3.1 document",
    responses: {
      200: {
        description: "the document",
        content: { "application/json": { schema: z.object({}).passthrough() } },
      },
    },
  });
  const preflight = {
    tags: ["Streams"],
    summary: "CORS preflight for browsers (origins configured per tenant)",
    responses: {
      204: { description: "allowed: Access-Control-Allow-* headers for the tenant's origin" },
      401: { description: "no valid ?token= (a preflight carries no Authorization header)" },
      403: { description: "the Origin is not one of the tenant's CORS origins" },
    },
  };
  app.openAPIRegistry.registerPath({ method: "options", path: "/v1/events", ...preflight });
  app.openAPIRegistry.registerPath({
    method: "options",
    path: "/v1/midjourney/{task_id}/events",
    ...preflight,
    request: {
      params: z.object({ task_id: z.string().openapi({ param: { name: "task_id", in: "path" } }) }),
    },
  });
}
