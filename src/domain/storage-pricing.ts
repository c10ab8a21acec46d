/**
 * Storage priced per GB-month, exactly: a day of B bytes at P micro-USD per GB-month is
 * B x P / (10^9 x 30) micro-USD. Whole micro-USD are charged; the rest (a numerator below
 * 30 x 10^9) carries to the next day, so over any number of days the sum charged is the
 * exact total rounded down once, never once per day. B x P can pass 2^53 (10 TB at 1,000 USD
 * per GB-month), so the product is taken in BigInt.
 */

/** 10^9 bytes (a decimal GB, as storage is sold) x 30 days. */
export const BYTE_DAYS_PER_GB_MONTH = 30_000_000_000n;

export interface StorageDayCharge {
  /** Whole micro-USD due for the day, including what earlier days still owe. */
  dueMicros: number;
  /** What carries to the next day: below BYTE_DAYS_PER_GB_MONTH. */
  remainder: number;
}

export function storageDayCharge(
  bytes: number,
  pricePerGbMonth: number,
  carriedRemainder: number,
  owedMicros: number,
): StorageDayCharge {
  const total = BigInt(carriedRemainder) + BigInt(bytes) * BigInt(pricePerGbMonth);
  return {
    dueMicros: owedMicros + Number(total / BYTE_DAYS_PER_GB_MONTH),
    remainder: Number(total % BYTE_DAYS_PER_GB_MONTH),
  };
}

/** The UTC day of an instant, YYYY-MM-DD. */
export const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** The UTC day before the one of `ms`: the last whole day, the one the cron charges. */
export const lastWholeDay = (ms: number) => utcDay(Math.floor(ms / 86_400_000) * 86_400_000 - 1);
