import type { Action } from "../domain/actions";
import { newKeyId, newTenantId } from "../domain/ids";
import { mintKey, sha256Hex } from "../domain/keys";
import { type Scope, storedScopes } from "../domain/scopes";
import { isRefused, type Refused, refusedOr } from "./constraints";

export interface TenantRow {
  id: string;
  name: string;
  status: "active" | "suspended";
  balance: number;
  price_multiplier_bps: number;
  inflight: number;
  max_inflight: number;
  cors_origins: string;
  created_at: number;
}

export interface KeyRow {
  id: string;
  tenant_id: string;
  name: string;
  prefix: string;
  status: "active" | "disabled" | "revoked";
  expires_at: number | null;
  allowed_actions: string | null;
  /** JSON array of scopes; NULL = all (src/domain/scopes.ts). */
  scopes: string | null;
  rpm_limit: number;
  inflight: number;
  max_inflight: number;
  daily_cap: number | null;
  monthly_cap: number | null;
  created_at: number;
  revoked_at: number | null;
}

/** What authentication needs about a key and its tenant, read in one query. */
export interface KeyPrincipal {
  key: KeyRow;
  tenant: TenantRow;
}

const KEY_COLUMNS = `id, tenant_id, name, prefix, status, expires_at, allowed_actions, scopes, rpm_limit,
  inflight, max_inflight, daily_cap, monthly_cap, created_at, revoked_at`;

export interface NewTenant {
  name: string;
  priceMultiplierBps?: number;
  maxInflight?: number;
  corsOrigins?: string[];
}

export async function createTenant(db: D1Database, input: NewTenant, at = Date.now()): Promise<TenantRow> {
  const id = newTenantId();
  await db
    .prepare(
      `INSERT INTO tenants (id, name, price_multiplier_bps, max_inflight, cors_origins, created_at)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6)`,
    )
    .bind(
      id,
      input.name,
      input.priceMultiplierBps ?? 10_000,
      input.maxInflight ?? 200,
      JSON.stringify(input.corsOrigins ?? []),
      at,
    )
    .run();
  return (await getTenant(db, id))!;
}

export async function getTenant(db: D1Database, id: string): Promise<TenantRow | null> {
  return db.prepare("SELECT * FROM tenants WHERE id = ?1").bind(id).first<TenantRow>();
}

export async function listTenants(db: D1Database, limit: number, after?: string): Promise<TenantRow[]> {
  const { results } = await db
    .prepare("SELECT * FROM tenants WHERE id > ?1 ORDER BY id LIMIT ?2")
    .bind(after ?? "", limit)
    .all<TenantRow>();
  return results;
}

export interface TenantPatch {
  name?: string;
  status?: "active" | "suspended";
  priceMultiplierBps?: number;
  maxInflight?: number;
  corsOrigins?: string[];
}

export async function updateTenant(
  db: D1Database,
  id: string,
  patch: TenantPatch,
): Promise<TenantRow | null | Refused<"tenant_inflight_cap">> {
  // A cap below what is in flight now would break the CHECK that admission relies on.
  const written = await refusedOr(
    db
      .prepare(
        `UPDATE tenants SET name = COALESCE(?2, name), status = COALESCE(?3, status),
         price_multiplier_bps = COALESCE(?4, price_multiplier_bps), max_inflight = COALESCE(?5, max_inflight),
         cors_origins = COALESCE(?6, cors_origins)
       WHERE id = ?1`,
      )
      .bind(
        id,
        patch.name ?? null,
        patch.status ?? null,
        patch.priceMultiplierBps ?? null,
        patch.maxInflight ?? null,
        patch.corsOrigins ? JSON.stringify(patch.corsOrigins) : null,
      )
      .run(),
    ["tenant_inflight_cap"],
  );
  return isRefused(written) ? written : getTenant(db, id);
}

export interface NewKey {
  name: string;
  expiresAt?: number | null;
  allowedActions?: Action[] | null;
  scopes?: Scope[] | null;
  rpmLimit?: number;
  maxInflight?: number;
  dailyCapMicros?: number | null;
  monthlyCapMicros?: number | null;
}

export async function createKey(
  db: D1Database,
  tenantId: string,
  input: NewKey,
  at = Date.now(),
): Promise<{ row: KeyRow; secret: string }> {
  const id = newKeyId();
  const { secret, prefix } = mintKey();
  await db
    .prepare(
      `INSERT INTO api_keys (id, tenant_id, name, prefix, secret_hash, expires_at, allowed_actions, rpm_limit,
         max_inflight, daily_cap, monthly_cap, created_at, scopes)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)`,
    )
    .bind(
      id,
      tenantId,
      input.name,
      prefix,
      await sha256Hex(secret),
      input.expiresAt ?? null,
      input.allowedActions ? JSON.stringify(input.allowedActions) : null,
      input.rpmLimit ?? 60,
      input.maxInflight ?? 50,
      input.dailyCapMicros ?? null,
      input.monthlyCapMicros ?? null,
      at,
      storedScopes(input.scopes),
    )
    .run();
  return { row: (await getKey(db, tenantId, id))!, secret };
}

export async function getKey(db: D1Database, tenantId: string, keyId: string): Promise<KeyRow | null> {
  return db
    .prepare(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE id = ?1 AND tenant_id = ?2`)
    .bind(keyId, tenantId)
    .first<KeyRow>();
}

export async function listKeys(db: D1Database, tenantId: string): Promise<KeyRow[]> {
  const { results } = await db
    .prepare(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE tenant_id = ?1 ORDER BY created_at, id`)
    .bind(tenantId)
    .all<KeyRow>();
  return results;
}

export interface KeyPatch {
  name?: string;
  status?: "active" | "disabled";
  expiresAt?: number | null;
  allowedActions?: Action[] | null;
  scopes?: Scope[] | null;
  rpmLimit?: number;
  maxInflight?: number;
  dailyCapMicros?: number | null;
  monthlyCapMicros?: number | null;
}

/** Nullable fields distinguish "leave as is" (undefined) from "clear" (null). */
export async function updateKey(
  db: D1Database,
  tenantId: string,
  keyId: string,
  patch: KeyPatch,
): Promise<KeyRow | null | Refused<"key_inflight_cap">> {
  const sets: string[] = [];
  const values: unknown[] = [];
  const set = (column: string, value: unknown) => {
    values.push(value);
    sets.push(`${column} = ?${values.length + 2}`);
  };
  if (patch.name !== undefined) set("name", patch.name);
  if (patch.status !== undefined) set("status", patch.status);
  if (patch.expiresAt !== undefined) set("expires_at", patch.expiresAt);
  if (patch.allowedActions !== undefined)
    set("allowed_actions", patch.allowedActions ? JSON.stringify(patch.allowedActions) : null);
  if (patch.scopes !== undefined) set("scopes", storedScopes(patch.scopes));
  if (patch.rpmLimit !== undefined) set("rpm_limit", patch.rpmLimit);
  if (patch.maxInflight !== undefined) set("max_inflight", patch.maxInflight);
  if (patch.dailyCapMicros !== undefined) set("daily_cap", patch.dailyCapMicros);
  if (patch.monthlyCapMicros !== undefined) set("monthly_cap", patch.monthlyCapMicros);
  if (sets.length) {
    // A revoked key stays revoked: revocation is final.
    const written = await refusedOr(
      db
        .prepare(
          `UPDATE api_keys SET ${sets.join(", ")} WHERE id = ?1 AND tenant_id = ?2 AND status != 'revoked'`,
        )
        .bind(keyId, tenantId, ...values)
        .run(),
      ["key_inflight_cap"],
    );
    if (isRefused(written)) return written;
  }
  return getKey(db, tenantId, keyId);
}

export async function revokeKey(db: D1Database, tenantId: string, keyId: string, at = Date.now()) {
  await db
    .prepare(
      `UPDATE api_keys SET status = 'revoked', revoked_at = ?3 WHERE id = ?1 AND tenant_id = ?2 AND status != 'revoked'`,
    )
    .bind(keyId, tenantId, at)
    .run();
  return getKey(db, tenantId, keyId);
}

export function findPrincipalByHash(db: D1Database, secretHash: string): Promise<KeyPrincipal | null> {
  return findPrincipal(db, "k.secret_hash", secretHash);
}

/** A fresh read by key id (never from a cache), e.g. to say why admission refused a key. */
export function findPrincipalByKeyId(db: D1Database, keyId: string): Promise<KeyPrincipal | null> {
  return findPrincipal(db, "k.id", keyId);
}

async function findPrincipal(
  db: D1Database,
  column: "k.secret_hash" | "k.id",
  value: string,
): Promise<KeyPrincipal | null> {
  const row = await db
    .prepare(
      `SELECT k.id AS k_id, k.tenant_id, k.name AS k_name, k.prefix, k.status AS k_status, k.expires_at,
         k.allowed_actions, k.scopes, k.rpm_limit, k.inflight AS k_inflight, k.max_inflight AS k_max_inflight, k.daily_cap,
         k.monthly_cap, k.created_at AS k_created_at, k.revoked_at,
         t.name AS t_name, t.status AS t_status, t.balance, t.price_multiplier_bps, t.inflight AS t_inflight,
         t.max_inflight AS t_max_inflight, t.cors_origins, t.created_at AS t_created_at
       FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE ${column} = ?1`,
    )
    .bind(value)
    // biome-ignore lint/suspicious/noExplicitAny: a flat joined row, mapped field by field below
    .first<Record<string, any>>();
  if (!row) return null;
  return {
    key: {
      id: row.k_id,
      tenant_id: row.tenant_id,
      name: row.k_name,
      prefix: row.prefix,
      status: row.k_status,
      expires_at: row.expires_at,
      allowed_actions: row.allowed_actions,
      scopes: row.scopes,
      rpm_limit: row.rpm_limit,
      inflight: row.k_inflight,
      max_inflight: row.k_max_inflight,
      daily_cap: row.daily_cap,
      monthly_cap: row.monthly_cap,
      created_at: row.k_created_at,
      revoked_at: row.revoked_at,
    },
    tenant: {
      id: row.tenant_id,
      name: row.t_name,
      status: row.t_status,
      balance: row.balance,
      price_multiplier_bps: row.price_multiplier_bps,
      inflight: row.t_inflight,
      max_inflight: row.t_max_inflight,
      cors_origins: row.cors_origins,
      created_at: row.t_created_at,
    },
  };
}
