import { z } from "@hono/zod-openapi";
import type { TenantRow } from "../db/tenants";
import { isoOrNull } from "./time";

const origin = z.string().regex(/^https?:\/\/[^/\s]+$/, "must be an origin like https://app.example.com");

/** `upstream`: result URLs exactly as the upstream gave them; `hosted`: copied to R2, signed gateway links. */
export const ASSET_MODES = ["upstream", "hosted"] as const;
/** `signed`: HMAC links that expire; `capability`: an unguessable token in the path, valid while the file is kept. */
export const ASSET_LINK_KINDS = ["signed", "capability"] as const;

/** A tenant as the operator API shows it. */
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
    asset_mode: z.enum(ASSET_MODES),
    asset_link_ttl_seconds: z.number().int(),
    asset_retention_days: z.number().int(),
    asset_links: z.enum(ASSET_LINK_KINDS),
    storage_price_micros_per_gb_month: z.number().int(),
    created_at: z.string(),
  })
  .openapi("Tenant");

const tenantName = z.string().trim().min(1).max(200);
/** Settings an operator may set; omitted ones take the column defaults of migrations/0001_init.sql. */
const tenantSettings = {
  price_multiplier_bps: z.number().int().min(1).max(1_000_000).optional(),
  max_inflight: z.number().int().min(1).max(100_000).optional(),
  cors_origins: z.array(origin).max(50).optional(),
  asset_mode: z
    .enum(ASSET_MODES)
    .optional()
    .openapi({ description: "`hosted`: result files are copied to the gateway's storage and linked signed" }),
  asset_link_ttl_seconds: z
    .number()
    .int()
    .min(60)
    .max(366 * 86_400)
    .optional()
    .openapi({ description: "lifetime of a signed result link (default 604800 = 7 days)" }),
  asset_retention_days: z
    .number()
    .int()
    .min(1)
    .max(3650)
    .optional()
    .openapi({ description: "hosted files are deleted this many days after they were stored (default 30)" }),
  asset_links: z
    .enum(ASSET_LINK_KINDS)
    .optional()
    .openapi({
      description:
        "`signed` (default): links expire after asset_link_ttl_seconds; `capability`: an unguessable " +
        "token in the path, valid until retention deletes the file (applies to files stored from then on)",
    }),
  storage_price_micros_per_gb_month: z.number().int().min(0).max(1_000_000_000).optional().openapi({
    description:
      "hosted storage price, micro-USD per GB (10^9 bytes) per 30-day month, charged daily; 0 = free (default)",
  }),
};

export const TenantCreate = z.strictObject({ name: tenantName, ...tenantSettings }).openapi("TenantCreate");

export const TenantPatch = z
  .strictObject({
    name: tenantName.optional(),
    status: z.enum(["active", "suspended"]).optional(),
    ...tenantSettings,
  })
  .openapi("TenantPatch");

/** What db/tenants.ts writes: the request bodies as validated, field names and all. */
export type TenantInput = z.infer<typeof TenantCreate>;
export type TenantChanges = z.infer<typeof TenantPatch>;

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
    asset_mode: row.asset_mode,
    asset_link_ttl_seconds: row.asset_link_ttl_seconds,
    asset_retention_days: row.asset_retention_days,
    asset_links: row.asset_links,
    storage_price_micros_per_gb_month: row.storage_price_micros_per_gb_month,
    created_at: isoOrNull(row.created_at)!,
  };
}
