/**
 * Small pieces every route file uses: response and body descriptors, path parameters, the
 * tags and security of each API area, and the operator's "tenant or 404".
 */
import { z } from "@hono/zod-openapi";
import { getTenant } from "../db/tenants";
import { ApiError, notFoundTenant } from "../domain/errors";

/** A JSON response of `schema`. */
export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

/** A required JSON body (without `required`, a body under another content type validates as {}). */
export const body = <T extends z.ZodType>(schema: T) => ({
  required: true,
  content: { "application/json": { schema } },
});

const pathParam = (name: string) => z.string().openapi({ param: { name, in: "path" } });

export const TenantParams = z.object({ tenant_id: pathParam("tenant_id") });
export const KeyParams = TenantParams.extend({ key_id: pathParam("key_id") });
export const WebhookParams = z.object({ webhook_id: pathParam("webhook_id") });
export const UpstreamParams = z.object({ upstream_id: pathParam("upstream_id") });

const adminArea = (tag: string) => ({ tags: [tag], security: [{ adminToken: [] }] });
const tenantArea = (tag: string) => ({ tags: [tag], security: [{ subKey: [] }] });

/** Tags and security of each area of the API, as the OpenAPI document groups them. */
export const AREAS = {
  adminTenants: adminArea("Admin: tenants and keys"),
  adminFinance: adminArea("Admin: money and finance"),
  adminWebhooks: adminArea("Admin: webhooks"),
  adminUpstreams: adminArea("Admin: upstreams"),
  account: tenantArea("Account"),
  webhooks: tenantArea("Webhooks"),
  tasks: tenantArea("Tasks"),
} as const;

/** The tenant, or the 404 every operator route gives for an unknown one. */
export async function tenantOr404(db: D1Database, id: string) {
  const tenant = await getTenant(db, id);
  if (!tenant) throw notFoundTenant(id);
  return tenant;
}

/** A cursor page read with one extra row: the next cursor is the last row's id when there is more. */
export function pageOf<T extends { id: string }>(rows: T[], limit: number) {
  const page = rows.slice(0, limit);
  return { page, nextCursor: rows.length > limit ? page.at(-1)!.id : null };
}

/** A cap below what is in flight now would break the CHECK that admission relies on. */
export const inflightAboveNewCap = () =>
  new ApiError(
    "max_inflight_below_current",
    "max_inflight: lower than the tasks in flight now; wait for them to finish",
    { field: "max_inflight" },
  );

export const keyNotFound = (keyId: string) =>
  new ApiError("not_found", `key ${keyId} not found`, { field: "key_id" });
