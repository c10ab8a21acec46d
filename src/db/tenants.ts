import { newKeyId, newTenantId } from "../domain/ids";
import { mintKey, sha256Hex } from "../domain/keys";
import { storedScopes } from "../domain/scopes";
import type { KeyChanges, KeyInput } from "../schemas/key";
import type { TenantChanges, TenantInput } from "../schemas/tenant";
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
  asset_mode: "upstream" | "hosted";
  asset_link_ttl_seconds: number;
  asset_retention_days: number;
  asset_links: "signed" | "capability";
  storage_price_micros_per_gb_month: number;
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

const KEY_SELECT = `id, tenant_id, name, prefix, status, expires_at, allowed_actions, scopes, rpm_limit,
  inflight, max_inflight, daily_cap, monthly_cap, created_at, revoked_at`;

/**
 * How each API field of a tenant or key is stored: its column and encoding. The one field
 * list between the request schemas (src/schemas/) and the tables; an omitted field keeps the
 * column's value (or default), and null clears a nullable column.
 */
type ColumnsOf<T> = { [F in keyof T]-?: { column: string; encode?: (value: NonNullable<T[F]>) => unknown } };

const TENANT_FIELDS: ColumnsOf<TenantChanges> = {
  name: { column: "name" },
  status: { column: "status" },
  price_multiplier_bps: { column: "price_multiplier_bps" },
  max_inflight: { column: "max_inflight" },
  cors_origins: { column: "cors_origins", encode: (origins) => JSON.stringify(origins) },
  asset_mode: { column: "asset_mode" },
  asset_link_ttl_seconds: { column: "asset_link_ttl_seconds" },
  asset_retention_days: { column: "asset_retention_days" },
  asset_links: { column: "asset_links" },
  storage_price_micros_per_gb_month: { column: "storage_price_micros_per_gb_month" },
};

const KEY_FIELDS: ColumnsOf<KeyChanges> = {
  name: { column: "name" },
  status: { column: "status" },
  expires_at: { column: "expires_at", encode: (iso) => Date.parse(iso) },
  allowed_actions: { column: "allowed_actions", encode: (actions) => JSON.stringify(actions) },
  scopes: { column: "scopes", encode: (scopes) => storedScopes(scopes) },
  rpm_limit: { column: "rpm_limit" },
  max_inflight: { column: "max_inflight" },
  daily_cap_micros: { column: "daily_cap" },
  monthly_cap_micros: { column: "monthly_cap" },
};

/** The given fields as (column, stored value) pairs. */
function columnValues<T extends object>(columns: ColumnsOf<T>, input: T): Array<[string, unknown]> {
  const pairs: Array<[string, unknown]> = [];
  for (const field of Object.keys(columns) as Array<keyof T>) {
    const value = input[field];
    if (value === undefined) continue;
    const { column, encode } = columns[field];
    pairs.push([column, value === null || !encode ? value : encode(value as NonNullable<T[keyof T]>)]);
  }
  return pairs;
}

/** INSERT of fixed columns plus the given fields (the others take their defaults). */
function insertWith(
  db: D1Database,
  table: string,
  fixed: Record<string, unknown>,
  fields: Array<[string, unknown]>,
) {
  const pairs = [...Object.entries(fixed), ...fields];
  const columns = pairs.map(([column]) => column).join(", ");
  const placeholders = pairs.map((_, i) => `?${i + 1}`).join(", ");
  return db
    .prepare(`INSERT INTO ${table} (${columns}) VALUES (${placeholders})`)
    .bind(...pairs.map(([, value]) => value));
}

/** `col = ?n, …` for the given fields, numbered after `offset` bound parameters. */
function setClause(fields: Array<[string, unknown]>, offset: number) {
  return {
    sql: fields.map(([column], i) => `${column} = ?${i + offset + 1}`).join(", "),
    values: fields.map(([, value]) => value),
  };
}

export async function createTenant(db: D1Database, input: TenantInput, at = Date.now()): Promise<TenantRow> {
  const id = newTenantId();
  await insertWith(db, "tenants", { id, created_at: at }, columnValues(TENANT_FIELDS, input)).run();
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

/** Null when there is no such tenant; refused when max_inflight would fall below what is in flight. */
export async function updateTenant(
  db: D1Database,
  id: string,
  changes: TenantChanges,
): Promise<TenantRow | null | Refused<"tenant_inflight_cap">> {
  const fields = columnValues(TENANT_FIELDS, changes);
  if (fields.length) {
    const set = setClause(fields, 1);
    const written = await refusedOr(
      db
        .prepare(`UPDATE tenants SET ${set.sql} WHERE id = ?1`)
        .bind(id, ...set.values)
        .run(),
      ["tenant_inflight_cap"],
    );
    if (isRefused(written)) return written;
  }
  return getTenant(db, id);
}

export async function createKey(
  db: D1Database,
  tenantId: string,
  input: KeyInput,
  at = Date.now(),
): Promise<{ row: KeyRow; secret: string }> {
  const id = newKeyId();
  const { secret, prefix } = mintKey();
  const fixed = { id, tenant_id: tenantId, prefix, secret_hash: await sha256Hex(secret), created_at: at };
  await insertWith(db, "api_keys", fixed, columnValues(KEY_FIELDS, input)).run();
  return { row: (await getKey(db, tenantId, id))!, secret };
}

export async function getKey(db: D1Database, tenantId: string, keyId: string): Promise<KeyRow | null> {
  return db
    .prepare(`SELECT ${KEY_SELECT} FROM api_keys WHERE id = ?1 AND tenant_id = ?2`)
    .bind(keyId, tenantId)
    .first<KeyRow>();
}

export async function listKeys(db: D1Database, tenantId: string): Promise<KeyRow[]> {
  const { results } = await db
    .prepare(`SELECT ${KEY_SELECT} FROM api_keys WHERE tenant_id = ?1 ORDER BY created_at, id`)
    .bind(tenantId)
    .all<KeyRow>();
  return results;
}

/**
 * Null when there is no such key; refused when max_inflight would fall below what is in
 * flight. A revoked key stays revoked: revocation is final, the row comes back unchanged.
 */
export async function updateKey(
  db: D1Database,
  tenantId: string,
  keyId: string,
  changes: KeyChanges,
): Promise<KeyRow | null | Refused<"key_inflight_cap">> {
  const fields = columnValues(KEY_FIELDS, changes);
  if (fields.length) {
    const set = setClause(fields, 2);
    const written = await refusedOr(
      db
        .prepare(`UPDATE api_keys SET ${set.sql} WHERE id = ?1 AND tenant_id = ?2 AND status != 'revoked'`)
        .bind(keyId, tenantId, ...set.values)
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
         t.max_inflight AS t_max_inflight, t.cors_origins, t.asset_mode, t.asset_link_ttl_seconds,
         t.asset_retention_days, t.asset_links, t.storage_price_micros_per_gb_month, t.created_at AS t_created_at
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
      asset_mode: row.asset_mode,
      asset_link_ttl_seconds: row.asset_link_ttl_seconds,
      asset_retention_days: row.asset_retention_days,
      asset_links: row.asset_links,
      storage_price_micros_per_gb_month: row.storage_price_micros_per_gb_month,
      created_at: row.t_created_at,
    },
  };
}
