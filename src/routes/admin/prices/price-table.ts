import { z } from "@hono/zod-openapi";
import { loadPriceBook } from "../../../db/prices";
import { ACTIONS } from "../../../domain/actions";
import { unitPriceOf } from "../../../domain/pricing";

const PriceSchema = z
  .object({
    action: z.enum(ACTIONS),
    speed: z.string(),
    resolution: z.string(),
    list_micros: z.number().int(),
    override_micros: z.number().int().nullable(),
    price_micros: z
      .number()
      .int()
      .openapi({ description: "what tenants pay per unit, before their multiplier" }),
  })
  .openapi("Price");

export const PriceTable = z
  .object({ markup_bps: z.number().int(), data: z.array(PriceSchema) })
  .openapi("PriceTable");

/** The price table as operators see it: list, override and the resulting unit price. */
export async function priceTable(db: D1Database): Promise<z.infer<typeof PriceTable>> {
  const book = await loadPriceBook(db);
  return {
    markup_bps: book.markupBps,
    data: book.rows.map((r) => ({
      action: r.action,
      speed: r.speed,
      resolution: r.resolution,
      list_micros: r.listMicros,
      override_micros: r.overrideMicros,
      price_micros: unitPriceOf(r, book.markupBps),
    })),
  };
}
