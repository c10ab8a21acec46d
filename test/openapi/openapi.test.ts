import { env, SELF } from "cloudflare:test";
import { validate } from "@readme/openapi-parser";
import { beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../src/app";

const BASE = "http://gateway.test";
type Operation = { security?: Record<string, string[]>[]; tags?: string[]; responses?: object };
type Document = {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, unknown>; schemas: Record<string, unknown> };
};

let doc: Document;
beforeAll(async () => {
  const response = await SELF.fetch(`${BASE}/openapi.json`);
  expect(response.status).toBe(200);
  doc = await response.json();
});

/** Hono's `/v1/midjourney/:task_id/events` is OpenAPI's `/v1/midjourney/{task_id}/events`. */
const toOpenApiPath = (path: string) => path.replace(/:([A-Za-z0-9_]+)/g, "{$1}");

/** Every route the app answers, as "METHOD path" (middleware registered with app.use is method ALL). */
function servedRoutes(): string[] {
  const routes = createApp()
    .routes.filter((r) => r.method !== "ALL")
    .map((r) => `${r.method} ${toOpenApiPath(r.path)}`);
  return [...new Set(routes)].sort();
}

function documentedRoutes(): string[] {
  return Object.entries(doc.paths)
    .flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`))
    .sort();
}

describe("GET /openapi.json", () => {
  it("is a valid OpenAPI 3.1 document (checked by @readme/openapi-parser)", async () => {
    expect(doc.openapi).toBe("3.1.0");
    const result = await validate(structuredClone(doc) as never);
    expect(result.valid ? [] : result.errors).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it("the validator does catch a broken document (so the check above means something)", async () => {
    const broken = structuredClone(doc) as any;
    broken.paths["/v1/account"].get.responses["200"].description = 42;
    const result = await validate(broken);
    expect(result.valid).toBe(false);
  });

  it("documents every route the app serves", () => {
    expect(servedRoutes().length).toBeGreaterThan(40);
    expect(servedRoutes()).toContain("OPTIONS /v1/events");
    const documented = new Set(documentedRoutes());
    const missing = servedRoutes().filter((route) => !documented.has(route));
    expect(missing).toEqual([]);
  });

  it("documents no route the app does not serve", () => {
    const served = new Set(servedRoutes());
    const phantom = documentedRoutes().filter((route) => !served.has(route));
    expect(phantom).toEqual([]);
  });

  it("includes the console's admin endpoints, the docs page and the streams", () => {
    const documented = new Set(documentedRoutes());
    for (const route of [
      "GET /admin/tasks",
      "GET /admin/tasks/{task_id}",
      "POST /admin/tenants/{tenant_id}/stream-tokens",
      "GET /docs",
      "GET /openapi.json",
      "GET /health",
      "GET /v1/events",
      "GET /v1/midjourney/{task_id}/events",
      "POST /v1/stream-tokens",
      "GET /admin/ledger.csv",
      "GET /admin/usage",
      "GET /admin/reconciliation",
    ]) {
      expect(documented, route).toContain(route);
    }
  });

  it("names the credentials of every operation: admin token on /admin, sub-key or stream token on /v1", () => {
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual([
      "adminToken",
      "streamToken",
      "subKey",
    ]);
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        const schemes = (operation.security ?? []).flatMap((s) => Object.keys(s));
        if (path.startsWith("/admin/")) expect(schemes, `${method} ${path}`).toEqual(["adminToken"]);
        else if (path.startsWith("/v1/") && method !== "options") {
          expect(schemes.length, `${method} ${path}`).toBeGreaterThan(0);
          expect(
            schemes.every((s) => s === "subKey" || s === "streamToken"),
            `${method} ${path}`,
          ).toBe(true);
        }
      }
    }
  });

  it("describes the one error shape as a shared component", () => {
    expect(doc.components.schemas.Error).toBeDefined();
    const submit = doc.paths["/v1/midjourney/generations/imagine"]!.post!;
    expect(JSON.stringify(submit.responses)).toContain("#/components/schemas/Error");
  });
});

describe("GET /docs", () => {
  it("serves Swagger UI over /openapi.json with only same-origin scripts and styles", async () => {
    const response = await SELF.fetch(`${BASE}/docs`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/html/);
    const html = await response.text();
    expect(html).toContain("SwaggerUIBundle");
    expect(html).toContain("/openapi.json");
    const sources = [...html.matchAll(/<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(sources).toEqual(
      expect.arrayContaining([
        "/vendor/swagger-ui-dist/swagger-ui-bundle.js",
        "/vendor/swagger-ui-dist/swagger-ui.css",
      ]),
    );
    for (const source of sources) expect(source, source).not.toMatch(/^(https?:)?\/\//);
    expect(html).not.toMatch(/cdn\.|jsdelivr|unpkg/);
  });

  it("sends a CSP that forbids scripts from other hosts", async () => {
    const csp = (await SELF.fetch(`${BASE}/docs`)).headers.get("content-security-policy") ?? "";
    expect(csp).toMatch(/script-src 'self' 'sha256-[^']+'/);
    const scriptSrc = csp.split(";").find((d) => d.trim().startsWith("script-src")) ?? "";
    expect(scriptSrc).not.toContain("unsafe-inline");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toMatch(/https?:/);
  });

  it("the bundle it references is a static asset of this Worker (npm run build:assets)", async () => {
    const assets = (env as unknown as { ASSETS: Fetcher }).ASSETS;
    for (const file of ["swagger-ui-bundle.js", "swagger-ui.css"]) {
      const response = await assets.fetch(`${BASE}/vendor/swagger-ui-dist/${file}`);
      expect(response.status, `public/vendor/swagger-ui-dist/${file}: run npm run build:assets`).toBe(200);
      const body = await response.text();
      expect(body.length).toBeGreaterThan(100_000);
    }
  });
});
