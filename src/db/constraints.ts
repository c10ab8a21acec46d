/**
 * The one place that reads D1's error text. Every named CHECK constraint and every trigger
 * RAISE of the migrations maps to a typed refusal here (test/db/constraints.test.ts holds
 * the migrations and these lists to each other); nothing else in the code base matches on
 * database messages.
 */

/** The CHECKs of the upstreams table (migrations/0008) an operator's write can meet. */
export const UPSTREAM_CHECKS = [
  "upstream_weight_range",
  "upstream_max_inflight_positive",
  "upstream_actions_json",
  "upstream_credentials",
  "upstream_disabled_at",
] as const;

/** `CONSTRAINT <name> CHECK (…)` in migrations/*.sql. */
export const NAMED_CHECKS = [
  "balance_nonnegative",
  "rate_limit",
  "key_usable",
  "key_inflight_cap",
  "tenant_inflight_cap",
  "key_budget",
  "key_scopes_json",
  "archive_object_complete",
  ...UPSTREAM_CHECKS,
] as const;

/** `RAISE(ABORT, '<name>')` in the migrations' triggers. */
export const RAISED_NAMES = [
  "task_already_settled",
  "charge_step_exists",
  "refund_exists",
  "ledger_append_only",
  "ledger_step_required",
  "task_not_archivable",
] as const;

/** UNIQUE indexes a caller may collide with, by the columns SQLite names in its message. */
const UNIQUE_COLLISIONS = [
  { columns: "idempotency.", refusal: "idempotency_taken" },
  { columns: "ledger.task_id, ledger.step", refusal: "charge_step_exists" },
  { columns: "ledger.ref_id", refusal: "refund_exists" },
  { columns: "asset_storage_days.", refusal: "storage_day_charged" },
] as const;

export type DbRefusal =
  | (typeof NAMED_CHECKS)[number]
  | (typeof RAISED_NAMES)[number]
  | (typeof UNIQUE_COLLISIONS)[number]["refusal"];

/** What a db/ function returns instead of a row when the database refused the write. */
export interface Refused<R extends DbRefusal = DbRefusal> {
  refused: R;
}

export const isRefused = (value: unknown): value is Refused =>
  typeof value === "object" && value !== null && "refused" in value;

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

export function refusalOf(error: unknown): DbRefusal | null {
  const message = messageOf(error);
  const check = /CHECK constraint failed: (\w+)/.exec(message)?.[1];
  const named = NAMED_CHECKS.find((name) => name === check);
  if (named) return named;
  const unique = /UNIQUE constraint failed: (.*)$/m.exec(message)?.[1];
  const collision = unique && UNIQUE_COLLISIONS.find(({ columns }) => unique.startsWith(columns));
  if (collision) return collision.refusal;
  return RAISED_NAMES.find((name) => message.includes(name)) ?? null;
}

/**
 * Runs a write and returns the refusal when the database refuses it with one of `expected`;
 * any other failure is not the caller's to handle and propagates.
 */
export async function refusedOr<T, R extends DbRefusal>(
  write: Promise<T>,
  expected: readonly R[],
): Promise<T | Refused<R>> {
  try {
    return await write;
  } catch (error) {
    const refusal = refusalOf(error);
    if (refusal && (expected as readonly DbRefusal[]).includes(refusal)) return { refused: refusal as R };
    throw error;
  }
}

/** D1 sheds load with these messages: the request may be retried shortly, nothing was written. */
export function isDatabaseBusy(error: unknown): boolean {
  return /D1 DB is overloaded|Too many requests queued/i.test(messageOf(error));
}
