import { z } from "@hono/zod-openapi";
import type { TenantRow } from "../db/tenants";
import { isoOrNull } from "./time";

const origin = z.string().regex(/^https?:\/\/[^/\s]+$/, "must be an origin like https://app.example.com");

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
    created_at: z.string(),
  })
  .openapi("Tenant");

const tenantName = z.string().trim().min(1).max(200);
/** Settings an operator may set; omitted ones take the column defaults of migrations/0001_init.sql. */
const tenantSettings = {
  price_multiplier_bps: z.number().int().min(1).max(1_000_000).optional(),
  max_inflight: z.number().int().min(1).max(100_000).optional(),
  cors_origins: z.array(origin).max(50).optional(),
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
    created_at: isoOrNull(row.created_at)!,
  };
}
