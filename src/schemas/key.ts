import { z } from "@hono/zod-openapi";
import type { KeyRow } from "../db/tenants";
import { ACTIONS } from "../domain/actions";
import { SCOPE_DESCRIPTIONS, SCOPES, scopesOf } from "../domain/scopes";
import { isoOrNull } from "./time";

const micros = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** A sub-key as the operator API shows it (never its secret). */
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

export const KeyWithSecretSchema = KeySchema.extend({ key: z.string() }).openapi("ApiKeyWithSecret");

/** Limits an operator sets; omitted ones take the column defaults, null clears a nullable one. */
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

export const KeyCreate = z
  .strictObject({ name: z.string().trim().min(1).max(200), ...keyLimits })
  .openapi("KeyCreate");

export const KeyPatch = z
  .strictObject({
    name: z.string().trim().min(1).max(200).optional(),
    status: z.enum(["active", "disabled"]).optional(),
    ...keyLimits,
  })
  .openapi("KeyPatch");

/** What db/tenants.ts writes: the request bodies as validated, field names and all. */
export type KeyInput = z.infer<typeof KeyCreate>;
export type KeyChanges = z.infer<typeof KeyPatch>;

export function keyJson(row: KeyRow): z.infer<typeof KeySchema> {
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    name: row.name,
    prefix: row.prefix,
    status: row.status,
    expires_at: isoOrNull(row.expires_at),
    allowed_actions: row.allowed_actions ? JSON.parse(row.allowed_actions) : null,
    scopes: [...scopesOf(row.scopes)],
    rpm_limit: row.rpm_limit,
    inflight: row.inflight,
    max_inflight: row.max_inflight,
    daily_cap_micros: row.daily_cap,
    monthly_cap_micros: row.monthly_cap,
    created_at: isoOrNull(row.created_at)!,
    revoked_at: isoOrNull(row.revoked_at),
  };
}
