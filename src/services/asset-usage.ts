/**
 * What hosted results use: bytes served per tenant and day, and the daily storage charge.
 *
 * Served bytes are summed in the isolate and written by one batch a few seconds later (in
 * `waitUntil`), not by a D1 write per file answered. The trade-off: counts of an isolate that
 * is evicted before its flush are lost, so the figure can be low, never high. A response is
 * counted when it is answered (its Content-Length: the whole file, or the range), whether it
 * came from R2 or from the Workers Cache API (a cache hit still runs this Worker); a client
 * that hangs up mid-download is counted in full. HEAD and 304 count no bytes.
 */
import { addServedBytes, chargeStorageDay, recordOwedStorageDay, storageDue } from "../db/asset-usage";
import { lastWholeDay, storageDayCharge, utcDay } from "../domain/storage-pricing";
import { logEvent } from "../log";

/** Long enough to gather a burst of Range requests (a video seeking) into one write; well inside waitUntil's 30 s. */
const FLUSH_DELAY_MS = 5_000;

const pending = new Map<string, { tenantId: string; day: string; bytes: number; responses: number }>();
let flushScheduled = false;

export function countServedBytes(
  db: D1Database,
  tenantId: string,
  bytes: number,
  now: number,
  waitUntil: (promise: Promise<unknown>) => void,
): void {
  const day = utcDay(now);
  const key = `${tenantId}\n${day}`;
  const entry = pending.get(key) ?? { tenantId, day, bytes: 0, responses: 0 };
  entry.bytes += bytes;
  entry.responses += 1;
  pending.set(key, entry);
  if (flushScheduled) return;
  flushScheduled = true;
  waitUntil(new Promise((resolve) => setTimeout(resolve, FLUSH_DELAY_MS)).then(() => flushServedBytes(db)));
}

/** Writes what this isolate has counted (and clears it first, so a concurrent flush never counts twice). */
export async function flushServedBytes(db: D1Database): Promise<void> {
  flushScheduled = false;
  const counts = [...pending.values()];
  pending.clear();
  if (!counts.length) return;
  try {
    await addServedBytes(db, counts);
  } catch (error) {
    logEvent("asset_served_count_lost", {
      tenants: counts.length,
      bytes: counts.reduce((sum, c) => sum + c.bytes, 0),
      error: String(error),
    });
  }
}

/**
 * The cron: charges every tenant with a storage price for the last whole UTC day, once (the
 * day's row is the guard, so a second run, or two at once, charge nothing more). The bytes
 * are those stored when the charge runs (the first cron run of the next day). A balance that
 * cannot cover the charge is never taken below zero and the day is never skipped: the
 * amount is recorded as owed (log `storage_charge_unpaid`) and added to the next day's charge.
 */
export async function chargeStorage(db: D1Database, now: number): Promise<number> {
  const day = lastWholeDay(now);
  let charged = 0;
  for (const due of await storageDue(db, day)) {
    const { dueMicros, remainder } = storageDayCharge(due.bytes, due.price, due.remainder, due.owed_micros);
    const storageDay = {
      tenantId: due.tenant_id,
      day,
      bytes: due.bytes,
      price: due.price,
      dueMicros,
      remainder,
      at: now,
    };
    const outcome = await chargeStorageDay(db, storageDay);
    if (outcome === "charged") {
      charged += dueMicros;
      if (dueMicros > 0)
        logEvent("storage_charged", { tenant_id: due.tenant_id, day, bytes: due.bytes, micros: dueMicros });
    } else if (outcome.refused === "balance_nonnegative") {
      await recordOwedStorageDay(db, storageDay);
      logEvent("storage_charge_unpaid", {
        tenant_id: due.tenant_id,
        day,
        owed_micros: dueMicros,
        message: "the balance cannot cover the storage charge: it is owed and added to the next day's",
      });
    }
  }
  return charged;
}
