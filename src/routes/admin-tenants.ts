import { createRoute, z } from "@hono/zod-openapi";
import { isRefused } from "../db/constraints";
import {
  createKey,
  createTenant,
  getTenant,
  type KeyRow,
  listKeys,
  listTenants,
  revokeKey,
  type TenantRow,
  updateKey,
  updateTenant,
} from "../db/tenants";
import { ACTIONS } from "../domain/actions";
import { ApiError, notFoundTenant } from "../domain/errors";
import { SCOPE_DESCRIPTIONS, SCOPES, scopesOf } from "../domain/scopes";
import { createRouter, errorResponses } from "../http";
import { forgetCachedKeys } from "../middleware/auth";

export const adminTenants = createRouter();

const micros = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const origin = z.string().regex(/^https?:\/\/[^/\s]+$/, "must be an origin like https://app.example.com");

export const TenantSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    status: z.enum(["active", "suspended"]),
    balance_micros: z.number().int(),
    price_multiplier_bps: z.number().int(),
    inflight: z.number().int(),
    max_inflight: z.number().int(),
    cors_origins: z.array(z.string()),
    created_at: z.string(),
  })
  .openapi("Tenant");

export const KeySchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    name: z.string(),
    prefix: z.string(),
    status: z.enum(["active", "disabled", "revoked"]),
    expires_at: z.string().nullable(),
    allowed_actions: z.array(z.string()).nullable(),
    scopes: z.array(z.enum(SCOPES)).openapi({ description: "the scopes this key has (all unless narrowed)" }),
    rpm_limit: z.number().int(),
    inflight: z.number().int(),
    max_inflight: z.number().int(),
    daily_cap_micros: z.number().int().nullable(),
    monthly_cap_micros: z.number().int().nullable(),
    created_at: z.string(),
    revoked_at: z.string().nullable(),
  })
  .openapi("ApiKey");

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function tenantJson(row: TenantRow): z.infer<typeof TenantSchema> {
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    balance_micros: row.balance,
    price_multiplier_bps: row.price_multiplier_bps,
    inflight: row.inflight,
    max_inflight: row.max_inflight,
    cors_origins: JSON.parse(row.cors_origins),
    created_at: iso(row.created_at)!,
  };
}

export function keyJson(row: KeyRow): z.infer<typeof KeySchema> {
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    name: row.name,
    prefix: row.prefix,
    status: row.status,
    expires_at: iso(row.expires_at),
    allowed_actions: row.allowed_actions ? JSON.parse(row.allowed_actions) : null,
    scopes: [...scopesOf(row.scopes)],
    rpm_limit: row.rpm_limit,
    inflight: row.inflight,
    max_inflight: row.max_inflight,
    daily_cap_micros: row.daily_cap,
    monthly_cap_micros: row.monthly_cap,
    created_at: iso(row.created_at)!,
    revoked_at: iso(row.revoked_at),
  };
}

const TenantParams = z.object({
  tenant_id: z.string().openapi({ param: { name: "tenant_id", in: "path" } }),
});
const KeyParams = TenantParams.extend({
  key_id: z.string().openapi({ param: { name: "key_id", in: "path" } }),
});
const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
const body = <T extends z.ZodType>(schema: T) => ({
  required: true,
  content: { "application/json": { schema } },
});
const admin = { tags: ["Admin: tenants and keys"], security: [{ adminToken: [] }] };

/** The tenant, or the 404 every operator route gives for an unknown one. */
export async function tenantOr404(db: D1Database, id: string) {
  const tenant = await getTenant(db, id);
  if (!tenant) throw notFoundTenant(id);
  return tenant;
}

const TenantCreate = z
  .strictObject({
    name: z.string().trim().min(1).max(200),
    price_multiplier_bps: z.number().int().min(1).max(1_000_000).optional(),
    max_inflight: z.number().int().min(1).max(100_000).optional(),
    cors_origins: z.array(origin).max(50).optional(),
  })
  .openapi("TenantCreate");

adminTenants.openapi(
  createRoute({
    method: "post",
    path: "/admin/tenants",
    ...admin,
    summary: "create a tenant",
    request: { body: body(TenantCreate) },
    responses: { 201: json(TenantSchema, "the tenant"), ...errorResponses(400, 401) },
  }),
  async (c) => {
    const input = c.req.valid("json");
    const tenant = await createTenant(c.env.DB, {
      name: input.name,
      priceMultiplierBps: input.price_multiplier_bps,
      maxInflight: input.max_inflight,
      corsOrigins: input.cors_origins,
    });
    return c.json(tenantJson(tenant), 201);
  },
);

adminTenants.openapi(
  createRoute({
    method: "get",
    path: "/admin/tenants",
    ...admin,
    summary: "list tenants",
    request: {
      query: z.object({
        limit: z.coerce.number().int().min(1).max(500).default(100),
        cursor: z.string().optional(),
      }),
    },
    responses: {
      200: json(z.object({ data: z.array(TenantSchema), next_cursor: z.string().nullable() }), "tenants"),
      ...errorResponses(401),
    },
  }),
  async (c) => {
    const { limit, cursor } = c.req.valid("query");
    const rows = await listTenants(c.env.DB, limit + 1, cursor);
    const page = rows.slice(0, limit);
    return c.json(
      { data: page.map(tenantJson), next_cursor: rows.length > limit ? page.at(-1)!.id : null },
      200,
    );
  },
);

adminTenants.openapi(
  createRoute({
    method: "get",
    path: "/admin/tenants/{tenant_id}",
    ...admin,
    summary: "one tenant",
    request: { params: TenantParams },
    responses: { 200: json(TenantSchema, "the tenant"), ...errorResponses(401, 404) },
  }),
  async (c) => c.json(tenantJson(await tenantOr404(c.env.DB, c.req.valid("param").tenant_id)), 200),
);

const TenantPatch = z
  .strictObject({
    name: z.string().trim().min(1).max(200).optional(),
    status: z.enum(["active", "suspended"]).optional(),
    price_multiplier_bps: z.number().int().min(1).max(1_000_000).optional(),
    max_inflight: z.number().int().min(1).max(100_000).optional(),
    cors_origins: z.array(origin).max(50).optional(),
  })
  .openapi("TenantPatch");

adminTenants.openapi(
  createRoute({
    method: "patch",
    path: "/admin/tenants/{tenant_id}",
    ...admin,
    summary: "change a tenant (status, price multiplier, in-flight cap, CORS origins)",
    request: { params: TenantParams, body: body(TenantPatch) },
    responses: { 200: json(TenantSchema, "the tenant"), ...errorResponses(400, 401, 404) },
  }),
  async (c) => {
    const { tenant_id } = c.req.valid("param");
    await tenantOr404(c.env.DB, tenant_id);
    const input = c.req.valid("json");
    const tenant = await updateTenant(c.env.DB, tenant_id, {
      name: input.name,
      status: input.status,
      priceMultiplierBps: input.price_multiplier_bps,
      maxInflight: input.max_inflight,
      corsOrigins: input.cors_origins,
    });
    if (isRefused(tenant)) throw inflightAboveNewCap();
    forgetCachedKeys();
    return c.json(tenantJson(tenant!), 200);
  },
);

/** A cap below what is in flight now would break the CHECK that admission relies on. */
const inflightAboveNewCap = () =>
  new ApiError(
    "max_inflight_below_current",
    "max_inflight: lower than the tasks in flight now; wait for them to finish",
    { field: "max_inflight" },
  );

const keyLimits = {
  expires_at: z.iso.datetime({ offset: true }).nullable().optional(),
  allowed_actions: z.array(z.enum(ACTIONS)).min(1).nullable().optional(),
  scopes: z
    .array(z.enum(SCOPES))
    .min(1)
    .nullable()
    .optional()
    .openapi({
      description: `what the key may call; omit or null for all scopes. ${SCOPES.map(
        (scope) => `\`${scope}\`: ${SCOPE_DESCRIPTIONS[scope]}`,
      ).join("; ")}`,
    }),
  rpm_limit: z.number().int().min(1).max(100_000).optional(),
  max_inflight: z.number().int().min(1).max(100_000).optional(),
  daily_cap_micros: micros.nullable().optional(),
  monthly_cap_micros: micros.nullable().optional(),
};
const KeyCreate = z
  .strictObject({ name: z.string().trim().min(1).max(200), ...keyLimits })
  .openapi("KeyCreate");
const KeyPatch = z
  .strictObject({
    name: z.string().trim().min(1).max(200).optional(),
    status: z.enum(["active", "disabled"]).optional(),
    ...keyLimits,
  })
  .openapi("KeyPatch");

const toMs = (value: string | null | undefined) =>
  value === undefined ? undefined : value === null ? null : Date.parse(value);

adminTenants.openapi(
  createRoute({
    method: "post",
    path: "/admin/tenants/{tenant_id}/keys",
    ...admin,
    summary: "issue a sub-key (the secret is shown once)",
    request: { params: TenantParams, body: body(KeyCreate) },
    responses: {
      201: json(
        KeySchema.extend({ key: z.string() }).openapi("ApiKeyWithSecret"),
        "the key, with its secret",
      ),
      ...errorResponses(400, 401, 404),
    },
  }),
  async (c) => {
    const { tenant_id } = c.req.valid("param");
    await tenantOr404(c.env.DB, tenant_id);
    const input = c.req.valid("json");
    const { row, secret } = await createKey(c.env.DB, tenant_id, {
      name: input.name,
      expiresAt: toMs(input.expires_at),
      allowedActions: input.allowed_actions,
      scopes: input.scopes,
      rpmLimit: input.rpm_limit,
      maxInflight: input.max_inflight,
      dailyCapMicros: input.daily_cap_micros,
      monthlyCapMicros: input.monthly_cap_micros,
    });
    return c.json({ ...keyJson(row), key: secret }, 201);
  },
);

adminTenants.openapi(
  createRoute({
    method: "get",
    path: "/admin/tenants/{tenant_id}/keys",
    ...admin,
    summary: "list a tenant's keys (never their secrets)",
    request: { params: TenantParams },
    responses: { 200: json(z.object({ data: z.array(KeySchema) }), "keys"), ...errorResponses(401, 404) },
  }),
  async (c) => {
    const { tenant_id } = c.req.valid("param");
    await tenantOr404(c.env.DB, tenant_id);
    return c.json({ data: (await listKeys(c.env.DB, tenant_id)).map(keyJson) }, 200);
  },
);

adminTenants.openapi(
  createRoute({
    method: "patch",
    path: "/admin/tenants/{tenant_id}/keys/{key_id}",
    ...admin,
    summary: "change a key: disable/enable, expiry, scopes, allowed actions, limits and caps",
    request: { params: KeyParams, body: body(KeyPatch) },
    responses: { 200: json(KeySchema, "the key"), ...errorResponses(400, 401, 404, 409) },
  }),
  async (c) => {
    const { tenant_id, key_id } = c.req.valid("param");
    const input = c.req.valid("json");
    const row = await updateKey(c.env.DB, tenant_id, key_id, {
      name: input.name,
      status: input.status,
      expiresAt: toMs(input.expires_at),
      allowedActions: input.allowed_actions,
      scopes: input.scopes,
      rpmLimit: input.rpm_limit,
      maxInflight: input.max_inflight,
      dailyCapMicros: input.daily_cap_micros,
      monthlyCapMicros: input.monthly_cap_micros,
    });
    if (!row) throw new ApiError("not_found", `key ${key_id} not found`, { field: "key_id" });
    if (isRefused(row)) throw inflightAboveNewCap();
    if (row.status === "revoked")
      throw new ApiError("revoked_key_is_final", "a revoked key cannot be changed");
    forgetCachedKeys();
    return c.json(keyJson(row), 200);
  },
);

adminTenants.openapi(
  createRoute({
    method: "delete",
    path: "/admin/tenants/{tenant_id}/keys/{key_id}",
    ...admin,
    summary: "revoke a key (final)",
    request: { params: KeyParams },
    responses: { 200: json(KeySchema, "the revoked key"), ...errorResponses(401, 404) },
  }),
  async (c) => {
    const { tenant_id, key_id } = c.req.valid("param");
    const row = await revokeKey(c.env.DB, tenant_id, key_id);
    if (!row) throw new ApiError("not_found", `key ${key_id} not found`, { field: "key_id" });
    forgetCachedKeys();
    return c.json(keyJson(row), 200);
  },
);
