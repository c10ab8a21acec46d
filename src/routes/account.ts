import { createRoute, z } from "@hono/zod-openapi";
import { spendOfKey } from "../db/credits";
import { ledgerPage, usageTotals } from "../db/ledger-reads";
import { getKey, getTenant } from "../db/tenants";
import { dayPeriod, monthPeriod } from "../domain/periods";
import { boundedRange, RANGE_DESCRIPTION, RANGE_DOCS } from "../domain/ranges";
import { SCOPES, scopesOf } from "../domain/scopes";
import { createRouter, errorResponses } from "../http";
import { LedgerEntrySchema, ledgerJson, parseGroupBy, UsageRowSchema } from "./admin-finance";

export const account = createRouter();

const tenantApi = { tags: ["Account"], security: [{ subKey: [] }] };

const AccountSchema = z
  .object({
    tenant: z.object({
      id: z.string(),
      name: z.string(),
      balance_micros: z.number().int(),
      inflight: z.number().int(),
      max_inflight: z.number().int(),
      price_multiplier_bps: z.number().int(),
    }),
    key: z.object({
      id: z.string(),
      name: z.string(),
      prefix: z.string(),
      rpm_limit: z.number().int(),
      inflight: z.number().int(),
      max_inflight: z.number().int(),
      allowed_actions: z.array(z.string()).nullable(),
      scopes: z.array(z.enum(SCOPES)),
      expires_at: z.string().nullable(),
      daily_cap_micros: z.number().int().nullable(),
      monthly_cap_micros: z.number().int().nullable(),
      spent_today_micros: z.number().int(),
      spent_this_month_micros: z.number().int(),
    }),
  })
  .openapi("Account");

account.openapi(
  createRoute({
    method: "get",
    path: "/v1/account",
    ...tenantApi,
    summary: "balance, limits, in-flight tasks and this key's spend today and this month",
    responses: {
      200: { description: "the account", content: { "application/json": { schema: AccountSchema } } },
      ...errorResponses(401, 403),
    },
  }),
  async (c) => {
    const principal = c.get("principal");
    const now = Date.now();
    // Fresh rows, not the auth cache: balances and in-flight counts change every second.
    const [tenant, key, spend] = await Promise.all([
      getTenant(c.env.DB, principal.tenant.id),
      getKey(c.env.DB, principal.tenant.id, principal.key.id),
      spendOfKey(c.env.DB, principal.key.id, dayPeriod(now), monthPeriod(now)),
    ]);
    return c.json(
      {
        tenant: {
          id: tenant!.id,
          name: tenant!.name,
          balance_micros: tenant!.balance,
          inflight: tenant!.inflight,
          max_inflight: tenant!.max_inflight,
          price_multiplier_bps: tenant!.price_multiplier_bps,
        },
        key: {
          id: key!.id,
          name: key!.name,
          prefix: key!.prefix,
          rpm_limit: key!.rpm_limit,
          inflight: key!.inflight,
          max_inflight: key!.max_inflight,
          allowed_actions: key!.allowed_actions ? JSON.parse(key!.allowed_actions) : null,
          scopes: [...scopesOf(key!.scopes)],
          expires_at: key!.expires_at === null ? null : new Date(key!.expires_at).toISOString(),
          daily_cap_micros: key!.daily_cap,
          monthly_cap_micros: key!.monthly_cap,
          spent_today_micros: spend.day,
          spent_this_month_micros: spend.month,
        },
      },
      200,
    );
  },
);

const time = (description: string) => z.iso.datetime({ offset: true }).optional().openapi({ description });

account.openapi(
  createRoute({
    method: "get",
    path: "/v1/usage",
    ...tenantApi,
    summary: "the tenant's own usage totals and ledger rows",
    description: `${RANGE_DESCRIPTION} \`entries\` pages hold \`limit\` rows (1-1000, default 100).`,
    request: {
      query: z.object({
        from: time(RANGE_DOCS.from),
        to: time(RANGE_DOCS.to),
        group_by: z.string().optional().openapi({ example: "day,action" }),
        limit: z.coerce.number().int().min(1).max(1000).default(100),
        cursor: z.coerce.number().int().min(0).optional(),
      }),
    },
    responses: {
      200: {
        description: "usage",
        content: {
          "application/json": {
            schema: z.object({
              totals: z.array(UsageRowSchema),
              entries: z.array(LedgerEntrySchema),
              next_cursor: z.string().nullable(),
            }),
          },
        },
      },
      ...errorResponses(400, 401, 403),
    },
  }),
  async (c) => {
    const query = c.req.valid("query");
    const filter = {
      tenantId: c.get("principal").tenant.id,
      ...boundedRange(query.from, query.to, Date.now()),
    };
    const groupBy = parseGroupBy(query.group_by ?? "day,action").filter((d) => d !== "tenant");
    const [totals, page] = await Promise.all([
      usageTotals(c.env.DB, filter, groupBy),
      ledgerPage(c.env.DB, filter, query.cursor ?? 0, query.limit),
    ]);
    return c.json(
      {
        totals,
        entries: page.rows.map(ledgerJson),
        next_cursor: page.nextCursor === null ? null : String(page.nextCursor),
      },
      200,
    );
  },
);
