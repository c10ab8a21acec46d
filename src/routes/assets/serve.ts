import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { assetObjectKey } from "../../domain/asset-links";
import { configFrom } from "../../env";
import { createRouter, errorResponses } from "../../http";
import { serveAsset, serveCapabilityAsset } from "../../services/assets";

const pathParam = (name: string) => z.string().openapi({ param: { name, in: "path" } });

/**
 * A hosted result file (issue 14). Public, like a CDN link, but only through a signed link
 * the task view handed out: the signature covers the path and the expiry.
 */
/** What a hosted file answers, whichever link led to it; `errors` differ by link kind. */
const fileResponses = (...errors: Parameters<typeof errorResponses>) => ({
  200: {
    description: "the file",
    content: { "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } },
  },
  206: { description: "the requested byte range" },
  304: { description: "not modified (If-None-Match)" },
  416: { description: "the range starts past the end of the file" },
  ...errorResponses(...errors),
});

export const serveAssetRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/assets/t/{tenant_id}/{task_id}/{name}",
    tags: ["Hosted results"],
    summary: "a hosted result file (signed link from a task view; Range supported)",
    description:
      "Links come from a hosted tenant's task views (`asset_mode: hosted`). `exp` (unix seconds) and `sig` " +
      "(HMAC-SHA256 over the path and `exp`) must match; one `Range` is honoured (206, or 416 past the end). " +
      "Files are immutable: `Cache-Control: public, max-age=31536000, immutable`.",
    request: {
      params: z.object({
        tenant_id: pathParam("tenant_id"),
        task_id: pathParam("task_id"),
        name: pathParam("name"),
      }),
      query: z.object({ exp: z.string().optional(), sig: z.string().optional() }),
    },
    responses: fileResponses(403, 404),
  }),
  async (c) => {
    const { tenant_id, task_id, name } = c.req.valid("param");
    return (await serveAsset(
      c.env,
      configFrom(c.env),
      c.req.raw,
      assetObjectKey(tenant_id, task_id, name),
      waitUntilOf(c),
    )) as never;
  },
);

/**
 * A hosted result file through a capability link (tenants with `asset_links: capability`):
 * the unguessable token in the path is the only key; no expiry before retention deletes the file.
 */
export const serveCapabilityAssetRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/assets/c/{token}/{name}",
    tags: ["Hosted results"],
    summary: "a hosted result file (capability link from a task view; Range supported)",
    description:
      "Links come from the task views of a hosted tenant with `asset_links: capability`. The token (128 random " +
      "bits) opens one file until retention deletes it; an unknown token is 404. Range, ETag and caching as the " +
      "signed links.",
    request: { params: z.object({ token: pathParam("token"), name: pathParam("name") }) },
    responses: fileResponses(404),
  }),
  async (c) => {
    const { token } = c.req.valid("param");
    return (await serveCapabilityAsset(c.env, configFrom(c.env), c.req.raw, token, waitUntilOf(c))) as never;
  },
);

function waitUntilOf(c: Context) {
  return (promise: Promise<unknown>) => {
    try {
      c.executionCtx.waitUntil(promise);
    } catch {
      // No execution context (a direct app.fetch in a test): let the work finish on its own.
    }
  };
}
