/**
 * The one place that reads SQLite's error text. Every named constraint and trigger message
 * of the migrations that a caller may hit maps to a typed refusal here; nothing else in
 * the code base matches on database messages.
 */
export type DbRefusal =
  | "balance_nonnegative"
  | "rate_limit"
  | "key_usable"
  | "key_inflight_cap"
  | "tenant_inflight_cap"
  | "key_budget"
  | "idempotency_taken"
  | "task_already_settled"
  | "charge_step_exists"
  | "refund_exists"
  | "ledger_append_only";

const CHECKS: ReadonlySet<string> = new Set([
  "balance_nonnegative",
  "rate_limit",
  "key_usable",
  "key_inflight_cap",
  "tenant_inflight_cap",
  "key_budget",
]);
const RAISED: readonly DbRefusal[] = [
  "task_already_settled",
  "charge_step_exists",
  "refund_exists",
  "ledger_append_only",
];

export function refusalOf(error: unknown): DbRefusal | null {
  const message = error instanceof Error ? error.message : String(error);
  const check = /CHECK constraint failed: (\w+)/.exec(message)?.[1];
  if (check && CHECKS.has(check)) return check as DbRefusal;
  if (/UNIQUE constraint failed: idempotency\./.test(message)) return "idempotency_taken";
  if (/UNIQUE constraint failed: ledger\.task_id, ledger\.step/.test(message)) return "charge_step_exists";
  if (/UNIQUE constraint failed: ledger\.ref_id/.test(message)) return "refund_exists";
  return RAISED.find((name) => message.includes(name)) ?? null;
}
