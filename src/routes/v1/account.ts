import { createRoute, z } from "@hono/zod-openapi";
import { spendOfKey } from "../../db/credits";
import { getKey, getTenant } from "../../db/tenants";
import { dayPeriod, monthPeriod } from "../../domain/periods";
import { SCOPES, scopesOf } from "../../domain/scopes";
import { createRouter, errorResponses } from "../../http";
import { isoOrNull } from "../../schemas/time";
import { AREAS, json } from "../helpers";

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

export const accountRoute = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/v1/account",
    ...AREAS.account,
    summary: "balance, limits, in-flight tasks and this key's spend today and this month",
    responses: { 200: json(AccountSchema, "the account"), ...errorResponses(401, 403) },
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
          expires_at: isoOrNull(key!.expires_at),
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
