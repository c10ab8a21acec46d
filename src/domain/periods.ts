/** Spend periods for per-key caps, in UTC: 'd2026-11-29' and 'm2026-11'. */
export function dayPeriod(at: number): string {
  return `d${new Date(at).toISOString().slice(0, 10)}`;
}
export function monthPeriod(at: number): string {
  return `m${new Date(at).toISOString().slice(0, 7)}`;
}
