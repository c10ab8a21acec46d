import { type Action, effectiveBatchSize, type Speed, videoResolution } from "./actions";
import { divideRounded } from "./money";

/** One row of the operator-editable price table (integer micro-USD). */
export interface PriceRow {
  action: Action;
  speed: Speed | "";
  resolution: "480p" | "720p" | "";
  listMicros: number;
  overrideMicros: number | null;
}

export interface PriceBook {
  rows: readonly PriceRow[];
  /** Markup over the upstream list price in basis points (2000 = +20%). */
  markupBps: number;
}

export interface PricedRequest {
  action: Action;
  speed?: Speed;
  videoType?: string;
  endUrl?: string;
  batchSize?: unknown;
}

export interface Quote {
  unitMicros: number;
  units: number;
  totalMicros: number;
  priceKey: { action: Action; speed: Speed | ""; resolution: "480p" | "720p" | "" };
}

export class UnpricedActionError extends Error {
  constructor(readonly key: Quote["priceKey"]) {
    super(`no price configured for ${key.action}/${key.speed || "-"}/${key.resolution || "-"}`);
  }
}

export function priceKeyOf(request: PricedRequest): Quote["priceKey"] {
  if (request.action === "video") {
    return { action: "video", speed: "", resolution: videoResolution(request.videoType) };
  }
  return { action: request.action, speed: request.speed ?? "relax", resolution: "" };
}

/** The tenant-facing unit price of a row: the operator's override, or the list price with the markup. */
export function unitPriceOf(row: PriceRow, markupBps: number): number {
  if (row.overrideMicros !== null) return row.overrideMicros;
  return Number(divideRounded(BigInt(row.listMicros) * BigInt(10_000 + markupBps), 10_000n));
}

/**
 * The single price function: what a tenant pays for one submit. Video is charged per
 * video, times the effective batch size; the tenant multiplier applies last.
 */
export function quote(request: PricedRequest, book: PriceBook, tenantMultiplierBps = 10_000): Quote {
  const priceKey = priceKeyOf(request);
  const row = book.rows.find(
    (r) => r.action === priceKey.action && r.speed === priceKey.speed && r.resolution === priceKey.resolution,
  );
  if (!row) throw new UnpricedActionError(priceKey);
  const base = unitPriceOf(row, book.markupBps);
  // Never below the upstream's list price, whatever markup, override or tenant discount says:
  // a request is never forwarded at a price below what the upstream bills for it.
  const unitMicros = Math.max(
    row.listMicros,
    Number(divideRounded(BigInt(base) * BigInt(tenantMultiplierBps), 10_000n)),
  );
  const units = request.action === "video" ? effectiveBatchSize(request.batchSize) : 1;
  return { unitMicros, units, totalMicros: unitMicros * units, priceKey };
}
