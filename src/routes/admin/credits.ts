import { createRoute, z } from "@hono/zod-openapi";
import { isRefused } from "../../db/constraints";
import { credit } from "../../db/credits";
import type { LedgerEntry } from "../../db/ledger-reads";
import { ApiError, notFoundTenant } from "../../domain/errors";
import { createRouter, errorResponses } from "../../http";
import { LedgerEntrySchema, ledgerJson } from "../../schemas/ledger";
import { AREAS, body, json, TenantParams } from "../helpers";

/** Top-ups add credit (positive); adjustments correct it either way (never 0). */
const CreditBody = (kind: "topup" | "adjustment") =>
  z.strictObject({
    amount_micros:
      kind === "topup"
        ? z.number().int().min(1).max(Number.MAX_SAFE_INTEGER)
        : z
            .number()
            .int()
            .min(-Number.MAX_SAFE_INTEGER)
            .max(Number.MAX_SAFE_INTEGER)
            .refine((v) => v !== 0, "must not be 0"),
    reason: z.string().trim().min(1).max(500),
  });

const creditRoute = (kind: "topup" | "adjustment") =>
  createRouter().openapi(
    createRoute({
      method: "post",
      path: `/admin/tenants/{tenant_id}/${kind}s`,
      ...AREAS.adminFinance,
      summary: kind === "topup" ? "top up a tenant's balance" : "adjust a tenant's balance (signed)",
      request: { params: TenantParams, body: body(CreditBody(kind)) },
      responses: { 201: json(LedgerEntrySchema, "the ledger row"), ...errorResponses(400, 401, 404, 409) },
    }),
    async (c) => {
      const { tenant_id } = c.req.valid("param");
      const { amount_micros, reason } = c.req.valid("json");
      const row = await credit(c.env.DB, tenant_id, kind, amount_micros, reason);
      if (!row) throw notFoundTenant(tenant_id);
      if (isRefused(row)) {
        throw new ApiError("adjustment_exceeds_balance", "this adjustment would make the balance negative", {
          field: "amount_micros",
        });
      }
      return c.json(ledgerJson(row as unknown as LedgerEntry), 201);
    },
  );

export const topupRoute = creditRoute("topup");
export const adjustmentRoute = creditRoute("adjustment");
