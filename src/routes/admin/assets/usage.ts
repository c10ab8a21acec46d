import { createRoute, z } from "@hono/zod-openapi";
import { assetUsage } from "../../../db/assets";
import { createRouter, errorResponses } from "../../../http";
import { AREAS, json } from "../../helpers";

const AssetUsageSchema = z
  .object({
    tenant_id: z.string(),
    files: z.number().int(),
    bytes: z.number().int().openapi({ description: "bytes stored now in the gateway's storage" }),
  })
  .openapi("AssetUsage");

export const assetUsageRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/admin/assets/usage",
    ...AREAS.adminFinance,
    summary: "hosted result files stored now, per tenant (files and bytes)",
    request: { query: z.object({ tenant_id: z.string().optional() }) },
    responses: {
      200: json(z.object({ data: z.array(AssetUsageSchema) }), "bytes stored per tenant"),
      ...errorResponses(401),
    },
  }),
  async (c) => {
    const rows = await assetUsage(c.env.DB, c.req.valid("query").tenant_id);
    return c.json({ data: rows }, 200);
  },
);
