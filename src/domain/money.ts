/** Money is integer micro-USD. These helpers are the only place that converts to or from USD. */
export const MICROS_PER_USD = 1_000_000;

/** The task object reports `cost` in USD like the upstream does; the float exists only in that response. */
export function microsToUsdNumber(micros: number): number {
  return Number(microsToUsdString(micros));
}

/** Exact decimal rendering for CSV and consoles: 55040 → "0.055040". */
export function microsToUsdString(micros: number): string {
  const sign = micros < 0 ? "-" : "";
  const abs = Math.abs(micros);
  const whole = Math.floor(abs / MICROS_PER_USD);
  const fraction = String(abs % MICROS_PER_USD).padStart(6, "0");
  return `${sign}${whole}.${fraction}`;
}

/** Rounds a / b half away from zero using exact integer arithmetic. */
export function divideRounded(numerator: bigint, denominator: bigint): bigint {
  const half = denominator / 2n;
  return numerator >= 0n ? (numerator + half) / denominator : -((-numerator + half) / denominator);
}

export function assertSafeMicros(value: number, field: string): void {
  if (!Number.isSafeInteger(value)) throw new RangeError(`${field} must be an integer number of micro-USD`);
}
