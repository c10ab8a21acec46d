/**
 * Hosted results' usage in D1: bytes served per tenant and UTC day, and the daily storage
 * charge (one `asset_storage_days` row per tenant and day, with the ledger row in the same batch).
 */

import { isRefused, type Refused, refusedOr } from "./constraints";
import { insertStorageCharge } from "./ledger-writes";

export interface ServedCount {
  tenantId: string;
  day: string;
  bytes: number;
  responses: number;
}

/** Adds counts summed elsewhere (one statement per tenant and day, in one batch). */
export async function addServedBytes(db: D1Database, counts: ServedCount[]): Promise<void> {
  if (!counts.length) return;
  await db.batch(
    counts.map((count) =>
      db
        .prepare(
          `INSERT INTO asset_served_days (tenant_id, day, bytes, responses) VALUES (?1, ?2, ?3, ?4)
           ON CONFLICT (tenant_id, day) DO UPDATE SET bytes = bytes + excluded.bytes,
             responses = responses + excluded.responses`,
        )
        .bind(count.tenantId, count.day, count.bytes, count.responses),
    ),
  );
}

/** A tenant the daily storage charge is due for: its price, bytes stored now and what the last day carried. */
export interface StorageDue {
  tenant_id: string;
  price: number;
  bytes: number;
  last_day: string | null;
  remainder: number;
  owed_micros: number;
}

/** Tenants with a storage price and no row for `day` yet (index searches only). */
export async function storageDue(db: D1Database, day: string): Promise<StorageDue[]> {
  const { results } = await db
    .prepare(
      `SELECT t.id AS tenant_id, t.storage_price_micros_per_gb_month AS price,
         (SELECT COALESCE(SUM(f.bytes), 0) FROM asset_files f WHERE f.tenant_id = t.id) AS bytes,
         p.day AS last_day, COALESCE(p.remainder, 0) AS remainder, COALESCE(p.owed_micros, 0) AS owed_micros
       FROM tenants t
       LEFT JOIN asset_storage_days p ON p.tenant_id = t.id
         AND p.day = (SELECT MAX(d.day) FROM asset_storage_days d WHERE d.tenant_id = t.id)
       WHERE t.storage_price_micros_per_gb_month > 0
         AND NOT EXISTS (SELECT 1 FROM asset_storage_days x WHERE x.tenant_id = t.id AND x.day = ?1)`,
    )
    .bind(day)
    .all<StorageDue>();
  return results;
}

export interface StorageDay {
  tenantId: string;
  day: string;
  bytes: number;
  price: number;
  dueMicros: number;
  remainder: number;
  at: number;
}

const insertDay = (db: D1Database, d: StorageDay, charged: number, owed: number) =>
  db
    .prepare(
      `INSERT INTO asset_storage_days (tenant_id, day, bytes, price, charged_micros, owed_micros, remainder, created_at)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)`,
    )
    .bind(d.tenantId, d.day, d.bytes, d.price, charged, owed, d.remainder, d.at);

/**
 * Records one tenant's day of storage and charges what is due, all or nothing: the day's row
 * (its primary key refuses a second charge of the same day), the debit and the ledger row.
 * A balance that cannot cover it refuses the whole batch (`balance_nonnegative`); the caller
 * then records the day as owed with `recordOwedStorageDay`.
 */
export async function chargeStorageDay(
  db: D1Database,
  d: StorageDay,
): Promise<"charged" | Refused<"balance_nonnegative" | "storage_day_charged">> {
  const statements = [insertDay(db, d, d.dueMicros, 0)];
  if (d.dueMicros > 0) {
    statements.push(
      db.prepare("UPDATE tenants SET balance = balance - ?2 WHERE id = ?1").bind(d.tenantId, d.dueMicros),
      insertStorageCharge(db, {
        tenantId: d.tenantId,
        day: d.day,
        amountMicros: d.dueMicros,
        reason: `storage ${d.day}: ${d.bytes} bytes`,
        at: d.at,
      }),
    );
  }
  const outcome = await refusedOr(db.batch(statements), ["balance_nonnegative", "storage_day_charged"]);
  return isRefused(outcome) ? outcome : "charged";
}

/** The day's row with nothing charged: what was due carries to the next day. */
export async function recordOwedStorageDay(db: D1Database, d: StorageDay): Promise<void> {
  await refusedOr(insertDay(db, d, 0, d.dueMicros).run(), ["storage_day_charged"]);
}

export interface AssetUsageTotals {
  tenant_id: string;
  served_bytes: number;
  served_responses: number;
  storage_charged_micros: number;
  storage_owed_micros: number;
}

/** Served bytes and storage charged per tenant over [from, to] (UTC days, inclusive), and what is owed now. */
export async function assetUsageTotals(
  db: D1Database,
  from: string,
  to: string,
  tenantId?: string,
): Promise<AssetUsageTotals[]> {
  const [served, storage] = await db.batch<Record<string, unknown>>([
    db
      .prepare(
        `SELECT tenant_id, SUM(bytes) AS bytes, SUM(responses) AS responses FROM asset_served_days
         WHERE day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR tenant_id = ?3) GROUP BY tenant_id`,
      )
      .bind(from, to, tenantId ?? null),
    db
      .prepare(
        `SELECT d.tenant_id, SUM(d.charged_micros) AS charged,
           (SELECT l.owed_micros FROM asset_storage_days l WHERE l.tenant_id = d.tenant_id
            ORDER BY l.day DESC LIMIT 1) AS owed
         FROM asset_storage_days d WHERE d.day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR d.tenant_id = ?3)
         GROUP BY d.tenant_id`,
      )
      .bind(from, to, tenantId ?? null),
  ]);
  const totals = new Map<string, AssetUsageTotals>();
  const row = (id: string) => {
    let entry = totals.get(id);
    if (!entry) {
      entry = {
        tenant_id: id,
        served_bytes: 0,
        served_responses: 0,
        storage_charged_micros: 0,
        storage_owed_micros: 0,
      };
      totals.set(id, entry);
    }
    return entry;
  };
  for (const r of served!.results) {
    const entry = row(String(r.tenant_id));
    entry.served_bytes = Number(r.bytes);
    entry.served_responses = Number(r.responses);
  }
  for (const r of storage!.results) {
    const entry = row(String(r.tenant_id));
    entry.storage_charged_micros = Number(r.charged);
    entry.storage_owed_micros = Number(r.owed ?? 0);
  }
  return [...totals.values()];
}
