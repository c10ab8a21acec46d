import { createRoute, z } from "@hono/zod-openapi";
import { loadPriceBook, updatePrices } from "../../../db/prices";
import { ACTIONS } from "../../../domain/actions";
import { ApiError } from "../../../domain/errors";
import type { PriceBook } from "../../../domain/pricing";
import { createRouter, errorResponses } from "../../../http";
import { forgetCachedPrices } from "../../../pricing-cache";
import { AREAS, body, json } from "../../helpers";
import { PriceTable, priceTable } from "./price-table";

const PriceUpdate = z
  .strictObject({
    markup_bps: z.number().int().min(-9_999).max(1_000_000).optional(),
    prices: z
      .array(
        z.strictObject({
          action: z.enum(ACTIONS),
          speed: z.enum(["", "relax", "fast", "turbo"]).default(""),
          resolution: z.enum(["", "480p", "720p"]).default(""),
          list_micros: z.number().int().min(0).optional(),
          override_micros: z.number().int().min(0).nullable().optional(),
        }),
      )
      .max(100)
      .default([]),
  })
  .openapi("PriceUpdate");

type PriceChange = z.infer<typeof PriceUpdate>["prices"][number];

/**
 * Price rules: a change must name an existing row, and an override may not undercut the
 * upstream's list price (the reseller would pay the difference).
 */
function checkPriceChange(book: PriceBook, change: PriceChange, index: number): void {
  const row = book.rows.find(
    (r) => r.action === change.action && r.speed === change.speed && r.resolution === change.resolution,
  );
  if (!row) {
    throw new ApiError(
      "invalid_request",
      `prices.${index}: no price row for ${change.action}/${change.speed}/${change.resolution}`,
      { field: `prices.${index}` },
    );
  }
  const list = change.list_micros ?? row.listMicros;
  if (change.override_micros != null && change.override_micros < list) {
    throw new ApiError(
      "invalid_request",
      `prices.${index}.override_micros: ${change.override_micros} is below the upstream's list price ${list}; the reseller would pay for the difference`,
      { field: `prices.${index}.override_micros` },
    );
  }
}

export const updatePricesRoute = createRouter().openapi(
  createRoute({
    method: "put",
    path: "/admin/prices",
    ...AREAS.adminFinance,
    summary: "change the markup and/or individual prices (all or nothing)",
    request: { body: body(PriceUpdate) },
    responses: { 200: json(PriceTable, "the new table"), ...errorResponses(400, 401) },
  }),
  async (c) => {
    const input = c.req.valid("json");
    const book = await loadPriceBook(c.env.DB);
    input.prices.forEach((change, index) => {
      checkPriceChange(book, change, index);
    });
    await updatePrices(
      c.env.DB,
      input.prices.map((p) => ({
        action: p.action,
        speed: p.speed,
        resolution: p.resolution,
        listMicros: p.list_micros,
        overrideMicros: p.override_micros,
      })),
      input.markup_bps,
    );
    forgetCachedPrices();
    return c.json(await priceTable(c.env.DB), 200);
  },
);
