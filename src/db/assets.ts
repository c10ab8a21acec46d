/**
 * Hosted results in D1: a tenant's asset settings, and one row per file stored in R2
 * (`asset_files`), which retention deletes and usage sums.
 */

export interface AssetSettings {
  asset_mode: "upstream" | "hosted";
  asset_link_ttl_seconds: number;
  asset_retention_days: number;
  asset_links: "signed" | "capability";
}

export function getAssetSettings(db: D1Database, tenantId: string): Promise<AssetSettings | null> {
  return db
    .prepare(`SELECT asset_mode, asset_link_ttl_seconds, asset_retention_days, asset_links
       FROM tenants WHERE id = ?1`)
    .bind(tenantId)
    .first<AssetSettings>();
}

export interface StoredAssetFile {
  objectKey: string;
  tenantId: string;
  taskId: string;
  bytes: number;
  storedAt: number;
  /** The token of the file's capability link (tenants with `asset_links: capability`). */
  capability?: string | null;
}

/** A copy of the same file again (a retried success) replaces its row: bytes are never counted twice. */
export async function recordAssetFile(db: D1Database, file: StoredAssetFile): Promise<void> {
  await db
    .prepare(
      `INSERT INTO asset_files (object_key, tenant_id, task_id, bytes, stored_at, capability)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6)
       ON CONFLICT (object_key) DO UPDATE SET bytes = excluded.bytes, stored_at = excluded.stored_at,
         capability = excluded.capability`,
    )
    .bind(file.objectKey, file.tenantId, file.taskId, file.bytes, file.storedAt, file.capability ?? null)
    .run();
}

/** The file a capability token opens (null: unknown, or deleted by retention). */
export function fileByCapability(
  db: D1Database,
  token: string,
): Promise<{ object_key: string; tenant_id: string } | null> {
  return db
    .prepare("SELECT object_key, tenant_id FROM asset_files WHERE capability = ?1")
    .bind(token)
    .first<{ object_key: string; tenant_id: string }>();
}

/** Files past their tenant's retention at `now`, oldest first, at most `limit`. */
export async function expiredAssetFiles(db: D1Database, now: number, limit: number): Promise<string[]> {
  const { results } = await db
    .prepare(
      `SELECT f.object_key FROM asset_files f JOIN tenants t ON t.id = f.tenant_id
       WHERE f.stored_at < ?1 - t.asset_retention_days * 86400000
       ORDER BY f.stored_at LIMIT ?2`,
    )
    .bind(now, limit)
    .all<{ object_key: string }>();
  return results.map((row) => row.object_key);
}

export async function forgetAssetFiles(db: D1Database, objectKeys: string[]): Promise<void> {
  if (!objectKeys.length) return;
  // 100 bound parameters at most per statement: delete in slices.
  const statements = [];
  for (let i = 0; i < objectKeys.length; i += 90) {
    const slice = objectKeys.slice(i, i + 90);
    statements.push(
      db
        .prepare(
          `DELETE FROM asset_files WHERE object_key IN (${slice.map((_, j) => `?${j + 1}`).join(", ")})`,
        )
        .bind(...slice),
    );
  }
  await db.batch(statements);
}

export interface AssetUsageRow {
  tenant_id: string;
  files: number;
  bytes: number;
}

/** Bytes stored now per tenant (every tenant with at least one file, or the one asked for). */
export async function assetUsage(db: D1Database, tenantId?: string): Promise<AssetUsageRow[]> {
  const { results } = await db
    .prepare(
      `SELECT tenant_id, COUNT(*) AS files, COALESCE(SUM(bytes), 0) AS bytes FROM asset_files
       WHERE ?1 IS NULL OR tenant_id = ?1 GROUP BY tenant_id ORDER BY tenant_id`,
    )
    .bind(tenantId ?? null)
    .all<AssetUsageRow>();
  return results;
}
