import { ApiError } from "./errors";

/**
 * Time ranges of ledger reads (/admin/ledger, /admin/ledger.csv, /admin/usage, /v1/usage):
 * `from` defaults to 30 days before `to` (or now), and one request spans at most 366
 * days, so every read is bounded; longer periods take several requests.
 */
export const DEFAULT_RANGE_DAYS = 30;
export const MAX_RANGE_DAYS = 366;
const DAY_MS = 86_400_000;

export const RANGE_DOCS = {
  from: `ISO 8601 time, inclusive (e.g. 2026-11-01T00:00:00Z); default ${DEFAULT_RANGE_DAYS} days before \`to\` (or now). At most ${MAX_RANGE_DAYS} days before \`to\` (or now).`,
  to: "ISO 8601 time, exclusive; default: no upper bound (up to now).",
} as const;

export const RANGE_DESCRIPTION = `Time range: \`from\` (inclusive) defaults to ${DEFAULT_RANGE_DAYS} days before \`to\` (or now), \`to\` (exclusive) to no upper bound; one request spans at most ${MAX_RANGE_DAYS} days (else 400 naming \`from\`).`;

/** `from` and `to` in epoch ms (undefined `to` = open-ended, up to now); throws a 400 naming the field. */
export function boundedRange(
  from: string | undefined,
  to: string | undefined,
  now: number,
): { from: number; to: number | undefined } {
  const toMs = to === undefined ? undefined : Date.parse(to);
  const end = toMs ?? now;
  const fromMs = from === undefined ? end - DEFAULT_RANGE_DAYS * DAY_MS : Date.parse(from);
  if (toMs !== undefined && toMs < fromMs) {
    throw new ApiError("invalid_request", "to: must not be before from", { field: "to" });
  }
  const days = (end - fromMs) / DAY_MS;
  if (days > MAX_RANGE_DAYS) {
    throw new ApiError(
      "invalid_request",
      `from: must be at most ${MAX_RANGE_DAYS} days before ${to === undefined ? "now" : "to"} (this range spans ${Math.ceil(days)} days); split longer periods into several requests`,
      { field: "from" },
    );
  }
  return { from: fromMs, to: toMs };
}
