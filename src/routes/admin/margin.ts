import { createRoute, z } from "@hono/zod-openapi";
import { MARGIN_DIMENSIONS, type MarginDimension, marginTotals } from "../../db/margin-reads";
import { ApiError } from "../../domain/errors";
import { boundedRange, RANGE_DESCRIPTION, RANGE_DOCS } from "../../domain/ranges";
import { createRouter, errorResponses } from "../../http";
import { isoTimeField } from "../../schemas/time";
import { AREAS, json } from "../helpers";

const MarginRowSchema = z
  .object({
    tenant: z.string().optional(),
    day: z.string().optional(),
    action: z.string().optional(),
    upstream: z.string().nullable().optional().openapi({
      description: "the pool member; null for tasks never forwarded or settled before it was recorded",
    }),
    tasks: z.number().int(),
    revenue_micros: z.number().int().openapi({ description: "what tenants paid, net of refunds" }),
    upstream_cost_micros: z.number().int().openapi({ description: "what the upstream reported it billed" }),
    margin_micros: z.number().int(),
    unknown_cost_tasks: z
      .number()
      .int()
      .openapi({ description: "successful tasks whose upstream cost is unknown" }),
    negative_margin_tasks: z.number().int(),
  })
  .openapi("MarginRow");

function marginGroupBy(value: string | undefined): MarginDimension[] {
  const groupBy = (value ?? "tenant")
    .split(",")
    .map((d) => d.trim())
    .filter(Boolean);
  for (const dimension of groupBy) {
    if (!(MARGIN_DIMENSIONS as readonly string[]).includes(dimension)) {
      throw new ApiError(
        "invalid_request",
        `group_by: '${dimension}' is not one of ${MARGIN_DIMENSIONS.join(", ")}`,
        {
          field: "group_by",
        },
      );
    }
  }
  return groupBy as MarginDimension[];
}

export const marginRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/admin/margin",
    ...AREAS.adminFinance,
    summary:
      "revenue, upstream cost and margin of settled tasks, grouped by tenant, day, action and/or upstream",
    description: `${RANGE_DESCRIPTION} Tasks count on the day they finished (UTC).`,
    request: {
      query: z.object({
        from: isoTimeField(RANGE_DOCS.from),
        to: isoTimeField(RANGE_DOCS.to),
        tenant_id: z.string().optional(),
        group_by: z.string().optional().openapi({
          example: "tenant,day,action",
          description: "any of tenant, day, action, upstream (default tenant)",
        }),
      }),
    },
    responses: {
      200: json(z.object({ group_by: z.array(z.string()), data: z.array(MarginRowSchema) }), "totals"),
      ...errorResponses(400, 401),
    },
  }),
  async (c) => {
    const query = c.req.valid("query");
    const groupBy = marginGroupBy(query.group_by);
    const range = boundedRange(query.from, query.to, Date.now());
    const data = await marginTotals(c.env.DB, { ...range, tenantId: query.tenant_id }, [...new Set(groupBy)]);
    return c.json({ group_by: groupBy, data }, 200);
  },
);
