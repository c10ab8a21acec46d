import { createRoute, z } from "@hono/zod-openapi";
import { assetUsageTotals } from "../../../db/asset-usage";
import { assetUsage } from "../../../db/assets";
import { ApiError } from "../../../domain/errors";
import { utcDay } from "../../../domain/storage-pricing";
import { createRouter, errorResponses } from "../../../http";
import { AREAS, json } from "../../helpers";

const AssetUsageSchema = z
  .object({
    tenant_id: z.string(),
    files: z.number().int(),
    bytes: z.number().int().openapi({ description: "bytes stored now in the gateway's storage" }),
    served_bytes: z
      .number()
      .int()
      .openapi({ description: "bytes answered from /assets/… in the period (cache hits included)" }),
    served_responses: z.number().int(),
    storage_charged_micros: z.number().int().openapi({ description: "storage charged in the period" }),
    storage_owed_micros: z
      .number()
      .int()
      .openapi({ description: "storage the balance could not cover: added to the next day's charge" }),
  })
  .openapi("AssetUsage");

const day = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, "must be a UTC day, YYYY-MM-DD")
  .optional();

/** At most a year per read: the day tables are read by their day index. */
const MAX_DAYS = 366;

export const assetUsageRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/admin/assets/usage",
    ...AREAS.adminFinance,
    summary:
      "hosted results per tenant: files and bytes stored now, bytes served and storage charged per period",
    description:
      "`from`/`to` are UTC days (inclusive; default the last 30 days, at most 366) for served bytes and storage charges.",
    request: { query: z.object({ tenant_id: z.string().optional(), from: day, to: day }) },
    responses: {
      200: json(
        z.object({ from: z.string(), to: z.string(), data: z.array(AssetUsageSchema) }),
        "usage per tenant",
      ),
      ...errorResponses(400, 401),
    },
  }),
  async (c) => {
    const query = c.req.valid("query");
    const to = query.to ?? utcDay(Date.now());
    const from = query.from ?? utcDay(Date.parse(to) - 29 * 86_400_000);
    const span = (Date.parse(to) - Date.parse(from)) / 86_400_000;
    if (!(span >= 0 && span < MAX_DAYS))
      throw new ApiError("invalid_request", `from must be a day before to, at most ${MAX_DAYS} days`, {
        field: "from",
      });
    const [stored, totals] = await Promise.all([
      assetUsage(c.env.DB, query.tenant_id),
      assetUsageTotals(c.env.DB, from, to, query.tenant_id),
    ]);
    const byTenant = new Map(totals.map((t) => [t.tenant_id, t]));
    const ids = [...new Set([...stored.map((s) => s.tenant_id), ...byTenant.keys()])].sort();
    const data = ids.map((id) => {
      const files = stored.find((s) => s.tenant_id === id);
      const usage = byTenant.get(id);
      return {
        tenant_id: id,
        files: files?.files ?? 0,
        bytes: files?.bytes ?? 0,
        served_bytes: usage?.served_bytes ?? 0,
        served_responses: usage?.served_responses ?? 0,
        storage_charged_micros: usage?.storage_charged_micros ?? 0,
        storage_owed_micros: usage?.storage_owed_micros ?? 0,
      };
    });
    return c.json({ from, to, data }, 200);
  },
);
