import type { PriceBook, PriceRow } from "../domain/pricing";

interface PriceRecord {
  action: PriceRow["action"];
  speed: PriceRow["speed"];
  resolution: PriceRow["resolution"];
  list_micros: number;
  override_micros: number | null;
}

export async function loadPriceBook(db: D1Database): Promise<PriceBook> {
  const [rows, markup] = await db.batch<PriceRecord | { value: string }>([
    db.prepare(
      "SELECT action, speed, resolution, list_micros, override_micros FROM prices ORDER BY action, speed, resolution",
    ),
    db.prepare("SELECT value FROM settings WHERE name = 'markup_bps'"),
  ]);
  return {
    rows: (rows!.results as PriceRecord[]).map((r) => ({
      action: r.action,
      speed: r.speed,
      resolution: r.resolution,
      listMicros: r.list_micros,
      overrideMicros: r.override_micros,
    })),
    markupBps: Number((markup!.results[0] as { value: string } | undefined)?.value ?? 0),
  };
}

export interface PriceChange {
  action: string;
  speed: string;
  resolution: string;
  listMicros?: number;
  overrideMicros?: number | null;
}

/** Applies the operator's edits in one batch: all rows change or none. Returns false if a row is unknown. */
export async function updatePrices(
  db: D1Database,
  changes: PriceChange[],
  markupBps: number | undefined,
  at = Date.now(),
): Promise<boolean> {
  const statements = changes.map((c) =>
    db
      .prepare(
        `UPDATE prices SET list_micros = COALESCE(?4, list_micros),
           override_micros = CASE WHEN ?6 THEN ?5 ELSE override_micros END, updated_at = ?7
         WHERE action = ?1 AND speed = ?2 AND resolution = ?3`,
      )
      .bind(
        c.action,
        c.speed,
        c.resolution,
        c.listMicros ?? null,
        c.overrideMicros ?? null,
        c.overrideMicros !== undefined ? 1 : 0,
        at,
      ),
  );
  if (markupBps !== undefined) {
    statements.push(
      db.prepare("UPDATE settings SET value = ?1 WHERE name = 'markup_bps'").bind(String(markupBps)),
    );
  }
  if (!statements.length) return true;
  const results = await db.batch(statements);
  return results.every((r) => r.meta.changes === 1);
}
