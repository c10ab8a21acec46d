// @ts-check
/** Money: integer micro-USD everywhere; formatting and parsing only here. */

/**
 * $0.05504, $10.00, -$0.066048: exact, at least two decimals, no float arithmetic.
 * @param {number | null | undefined} micros
 */
export function usd(micros) {
  if (micros === null || micros === undefined) return "—";
  const sign = micros < 0 ? "-" : "";
  const abs = Math.abs(micros);
  let fraction = String(abs % 1_000_000).padStart(6, "0");
  while (fraction.length > 2 && fraction.endsWith("0")) fraction = fraction.slice(0, -1);
  return `${sign}$${Math.floor(abs / 1_000_000).toLocaleString("en-US")}.${fraction}`;
}

/** The task object's `cost` is USD as a number (like the upstream's): to micro-USD. @param {number} cost */
export const costMicros = (cost) => Math.round(Number(cost) * 1_000_000);

/**
 * "12.5" → 12500000. Returns null when the text is not a non-negative amount.
 * @param {string} text
 */
export function parseUsd(text) {
  const match = /^\s*\$?\s*(\d{1,12})(?:\.(\d{0,6}))?\s*$/.exec(text);
  if (!match) return null;
  return Number(match[1]) * 1_000_000 + Number((match[2] ?? "").padEnd(6, "0"));
}
