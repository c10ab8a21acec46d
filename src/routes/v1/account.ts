import { createRoute, z } from "@hono/zod-openapi";
import { spendOfKey } from "../../db/credits";
import { getKey, getTenant } from "../../db/tenants";
import { dayPeriod, monthPeriod } from "../../domain/periods";
import { createRouter, errorResponses } from "../../http";
import { KeySchema, keyJson } from "../../schemas/key";
import { TenantSchema, tenantJson } from "../../schemas/tenant";
import { AREAS, json } from "../helpers";

/** What a tenant sees of its tenant and key: a subset of the operator's schemas, by name. */
const TENANT_FIELDS = {
  id: true,
  name: true,
  balance_micros: true,
  inflight: true,
  max_inflight: true,
  price_multiplier_bps: true,
} as const;
const KEY_FIELDS = {
  id: true,
  name: true,
  prefix: true,
  rpm_limit: true,
  inflight: true,
  max_inflight: true,
  allowed_actions: true,
  scopes: true,
  expires_at: true,
  daily_cap_micros: true,
  monthly_cap_micros: true,
} as const;

const AccountSchema = z
  .object({
    tenant: TenantSchema.pick(TENANT_FIELDS),
    key: KeySchema.pick(KEY_FIELDS).extend({
      spent_today_micros: z.number().int(),
      spent_this_month_micros: z.number().int(),
    }),
  })
  .openapi("Account");

function pick<T extends object, K extends keyof T>(value: T, fields: Record<K, true>): Pick<T, K> {
  return Object.fromEntries(Object.keys(fields).map((field) => [field, value[field as K]])) as Pick<T, K>;
}

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
        tenant: pick(tenantJson(tenant!), TENANT_FIELDS),
        key: {
          ...pick(keyJson(key!), KEY_FIELDS),
          spent_today_micros: spend.day,
          spent_this_month_micros: spend.month,
        },
      },
      200,
    );
  },
);
