import { loadPriceBook } from "./db/prices";
import type { PriceBook } from "./domain/pricing";

/** The price table changes rarely; each isolate keeps it for a few seconds to keep submits at one D1 batch. */
const TTL_MS = 5_000;
let cached: { book: PriceBook; until: number } | null = null;

export async function cachedPriceBook(db: D1Database): Promise<PriceBook> {
  const now = Date.now();
  if (cached && cached.until > now) return cached.book;
  const book = await loadPriceBook(db);
  cached = { book, until: now + TTL_MS };
  return book;
}

export function forgetCachedPrices(): void {
  cached = null;
}
