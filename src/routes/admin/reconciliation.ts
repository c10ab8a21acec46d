import { createRoute, z } from "@hono/zod-openapi";
import { reconcile } from "../../db/ledger-reads";
import { createRouter, errorResponses } from "../../http";
import { custodyBreaches } from "../../services/custody";
import { AREAS, json } from "../helpers";

const BreachSchema = z
  .object({
    check: z.string(),
    tenant_id: z.string().optional(),
    task_id: z.string().optional(),
    ledger_id: z.number().int().optional(),
    detail: z.string(),
  })
  .openapi("Breach");

export const reconciliationRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/admin/reconciliation",
    ...AREAS.adminFinance,
    summary: "checks the money invariants and lists every breach",
    responses: {
      200: json(
        z.object({
          ok: z.boolean(),
          checked_at: z.string(),
          checks: z.array(z.string()),
          breaches: z.array(BreachSchema),
        }),
        "report",
      ),
      ...errorResponses(401),
    },
  }),
  async (c) => {
    const now = Date.now();
    const [report, custody] = await Promise.all([reconcile(c.env.DB), custodyBreaches(c.env, now)]);
    const breaches = [...report.breaches, ...custody];
    const checks = [...report.checks, "charge_without_task_record", "charge_without_upstream_id"];
    return c.json(
      { ok: breaches.length === 0, checked_at: new Date(now).toISOString(), checks, breaches },
      200,
    );
  },
);
