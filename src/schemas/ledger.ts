import { z } from "@hono/zod-openapi";
import type { LedgerEntry } from "../db/ledger-reads";

export const LEDGER_KINDS = ["topup", "charge", "refund", "adjustment", "storage"] as const;

/** One ledger row as the operator and tenant APIs show it. */
export const LedgerEntrySchema = z
  .object({
    id: z.number().int(),
    tenant_id: z.string(),
    key_id: z.string().nullable(),
    task_id: z.string().nullable(),
    kind: z.enum(LEDGER_KINDS),
    action: z.string().nullable(),
    amount_micros: z.number().int(),
    balance_after_micros: z.number().int(),
    reason: z.string().nullable(),
    ref_id: z.number().int().nullable(),
    step: z
      .string()
      .nullable()
      .openapi({
        description:
          "the task's step a charge pays for (submit, modal.1, …); a refund names the step it gives back; " +
          "a storage row names the UTC day it charges",
      }),
    created_at: z.string(),
  })
  .openapi("LedgerEntry");

export function ledgerJson(row: LedgerEntry): z.infer<typeof LedgerEntrySchema> {
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    key_id: row.key_id,
    task_id: row.task_id,
    kind: row.kind,
    action: row.action,
    amount_micros: row.amount,
    balance_after_micros: row.balance_after,
    reason: row.reason,
    ref_id: row.ref_id,
    step: row.step,
    created_at: new Date(row.created_at).toISOString(),
  };
}

/** Charged, refunded and net totals of one group of ledger rows. */
export const UsageRowSchema = z
  .object({
    day: z.string().optional(),
    tenant: z.string().optional(),
    key: z.string().nullable().optional(),
    action: z.string().nullable().optional(),
    charged_micros: z.number().int(),
    refunded_micros: z.number().int(),
    net_micros: z.number().int(),
    charged_tasks: z.number().int(),
    refunded_tasks: z.number().int(),
  })
  .openapi("UsageRow");
