import { createRoute } from "@hono/zod-openapi";
import { createRouter, errorResponses } from "../../../http";
import { AREAS, json } from "../../helpers";
import { PriceTable, priceTable } from "./price-table";

export const getPricesRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/admin/prices",
    ...AREAS.adminFinance,
    summary: "the price table",
    responses: { 200: json(PriceTable, "prices in micro-USD"), ...errorResponses(401) },
  }),
  async (c) => c.json(await priceTable(c.env.DB), 200),
);
