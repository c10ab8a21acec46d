import { createRoute, z } from "@hono/zod-openapi";
import { isRefused } from "../db/constraints";
import { credit } from "../db/credits";
import {
  type LedgerEntry,
  type LedgerFilter,
  ledgerPage,
  reconcile,
  type UsageDimension,
  usageTotals,
} from "../db/ledger-reads";
import { loadPriceBook, updatePrices } from "../db/prices";
import { ACTIONS } from "../domain/actions";
import { csvLine } from "../domain/csv";
import { ApiError, notFoundTenant } from "../domain/errors";
import { microsToUsdString } from "../domain/money";
import { unitPriceOf } from "../domain/pricing";
import { boundedRange, RANGE_DESCRIPTION, RANGE_DOCS } from "../domain/ranges";
import { createRouter, errorResponses } from "../http";
import { forgetCachedPrices } from "../pricing-cache";
import { custodyBreaches } from "../services/custody";

export const adminFinance = createRouter();

const admin = { tags: ["Admin: money and finance"], security: [{ adminToken: [] }] };
const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
const TenantParams = z.object({
  tenant_id: z.string().openapi({ param: { name: "tenant_id", in: "path" } }),
});

export const LedgerEntrySchema = z
  .object({
    id: z.number().int(),
    tenant_id: z.string(),
    key_id: z.string().nullable(),
    task_id: z.string().nullable(),
    kind: z.enum(["topup", "charge", "refund", "adjustment"]),
    action: z.string().nullable(),
    amount_micros: z.number().int(),
    balance_after_micros: z.number().int(),
    reason: z.string().nullable(),
    ref_id: z.number().int().nullable(),
    step: z.string().nullable().openapi({
      description:
        "the task's step a charge pays for (submit, modal.1, …); a refund names the step it gives back",
    }),
    created_at: z.string(),
  })
  .openapi("LedgerEntry");

export function ledgerJson(row: LedgerEntry): z.infer<typeof LedgerEntrySchema> {
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    key_id: row.key_id,
    task_id: row.task_id,
    kind: row.kind,
    action: row.action,
    amount_micros: row.amount,
    balance_after_micros: row.balance_after,
    reason: row.reason,
    ref_id: row.ref_id,
    step: row.step,
    created_at: new Date(row.created_at).toISOString(),
  };
}

const CreditBody = (positive: boolean) =>
  z.strictObject({
    amount_micros: positive
      ? z.number().int().min(1).max(Number.MAX_SAFE_INTEGER)
      : z
          .number()
          .int()
          .min(-Number.MAX_SAFE_INTEGER)
          .max(Number.MAX_SAFE_INTEGER)
          .refine((v) => v !== 0, "must not be 0"),
    reason: z.string().trim().min(1).max(500),
  });

for (const kind of ["topup", "adjustment"] as const) {
  adminFinance.openapi(
    createRoute({
      method: "post",
      path: `/admin/tenants/{tenant_id}/${kind}s`,
      ...admin,
      summary: kind === "topup" ? "top up a tenant's balance" : "adjust a tenant's balance (signed)",
      request: {
        params: TenantParams,
        body: { required: true, content: { "application/json": { schema: CreditBody(kind === "topup") } } },
      },
      responses: { 201: json(LedgerEntrySchema, "the ledger row"), ...errorResponses(400, 401, 404, 409) },
    }),
    async (c) => {
      const { tenant_id } = c.req.valid("param");
      const { amount_micros, reason } = c.req.valid("json");
      const row = await credit(c.env.DB, tenant_id, kind, amount_micros, reason);
      if (!row) throw notFoundTenant(tenant_id);
      if (isRefused(row)) {
        throw new ApiError("adjustment_exceeds_balance", "this adjustment would make the balance negative", {
          field: "amount_micros",
        });
      }
      return c.json(ledgerJson(row as unknown as LedgerEntry), 201);
    },
  );
}

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
const PriceTable = z
  .object({ markup_bps: z.number().int(), data: z.array(PriceSchema) })
  .openapi("PriceTable");

async function priceTable(db: D1Database) {
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

adminFinance.openapi(
  createRoute({
    method: "get",
    path: "/admin/prices",
    ...admin,
    summary: "the price table",
    responses: { 200: json(PriceTable, "prices in micro-USD"), ...errorResponses(401) },
  }),
  async (c) => c.json(await priceTable(c.env.DB), 200),
);

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

adminFinance.openapi(
  createRoute({
    method: "put",
    path: "/admin/prices",
    ...admin,
    summary: "change the markup and/or individual prices (all or nothing)",
    request: { body: { required: true, content: { "application/json": { schema: PriceUpdate } } } },
    responses: { 200: json(PriceTable, "the new table"), ...errorResponses(400, 401) },
  }),
  async (c) => {
    const input = c.req.valid("json");
    const book = await loadPriceBook(c.env.DB);
    input.prices.forEach((p, i) => {
      if (
        !book.rows.some((r) => r.action === p.action && r.speed === p.speed && r.resolution === p.resolution)
      ) {
        throw new ApiError(
          "invalid_request",
          `prices.${i}: no price row for ${p.action}/${p.speed}/${p.resolution}`,
          {
            field: `prices.${i}`,
          },
        );
      }
      const row = book.rows.find(
        (r) => r.action === p.action && r.speed === p.speed && r.resolution === p.resolution,
      )!;
      const list = p.list_micros ?? row.listMicros;
      if (p.override_micros != null && p.override_micros < list) {
        throw new ApiError(
          "invalid_request",
          `prices.${i}.override_micros: ${p.override_micros} is below the upstream's list price ${list}; the reseller would pay for the difference`,
          { field: `prices.${i}.override_micros` },
        );
      }
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

const time = (description: string) => z.iso.datetime({ offset: true }).optional().openapi({ description });
const LedgerQuery = z.object({
  tenant_id: z.string().optional(),
  key_id: z.string().optional(),
  task_id: z.string().optional(),
  kind: z.enum(["topup", "charge", "refund", "adjustment"]).optional(),
  action: z.enum(ACTIONS).optional(),
  from: time(RANGE_DOCS.from),
  to: time(RANGE_DOCS.to),
});

/** The query as a ledger filter, its range defaulted and bounded (src/domain/ranges.ts). */
export function ledgerFilter(query: z.infer<typeof LedgerQuery>, now = Date.now()): LedgerFilter {
  const range = boundedRange(query.from, query.to, now);
  return {
    tenantId: query.tenant_id,
    keyId: query.key_id,
    taskId: query.task_id,
    kind: query.kind,
    action: query.action,
    from: range.from,
    to: range.to,
  };
}

adminFinance.openapi(
  createRoute({
    method: "get",
    path: "/admin/ledger",
    ...admin,
    summary: "the usage ledger, filtered, with cursor pagination",
    description: `${RANGE_DESCRIPTION} Pages hold \`limit\` rows (1-1000, default 100).`,
    request: {
      query: LedgerQuery.extend({
        limit: z.coerce.number().int().min(1).max(1000).default(100),
        cursor: z.coerce.number().int().min(0).optional(),
      }),
    },
    responses: {
      200: json(
        z.object({ data: z.array(LedgerEntrySchema), next_cursor: z.string().nullable() }),
        "ledger rows",
      ),
      ...errorResponses(400, 401),
    },
  }),
  async (c) => {
    const query = c.req.valid("query");
    const page = await ledgerPage(c.env.DB, ledgerFilter(query), query.cursor ?? 0, query.limit);
    return c.json(
      {
        data: page.rows.map(ledgerJson),
        next_cursor: page.nextCursor === null ? null : String(page.nextCursor),
      },
      200,
    );
  },
);

const CSV_COLUMNS = [
  "id",
  "created_at",
  "tenant_id",
  "key_id",
  "task_id",
  "kind",
  "action",
  "amount_usd",
  "balance_after_usd",
  "reason",
  "ref_id",
];

adminFinance.openapi(
  createRoute({
    method: "get",
    path: "/admin/ledger.csv",
    ...admin,
    summary: "the same ledger as CSV, streamed page by page",
    description: `${RANGE_DESCRIPTION} Cells a spreadsheet would evaluate as a formula (starting with =, +, -, @, tab or carriage return, other than plain numbers) are prefixed with a single quote.`,
    request: { query: LedgerQuery },
    responses: {
      200: { description: "CSV", content: { "text/csv": { schema: z.string() } } },
      ...errorResponses(400, 401),
    },
  }),
  (c) => {
    const filter = ledgerFilter(c.req.valid("query"));
    const db = c.env.DB;
    const encoder = new TextEncoder();
    let cursor = 0;
    let headerSent = false;
    // Pulls one page of 500 rows at a time, so a large range is never held in memory.
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (!headerSent) {
          headerSent = true;
          controller.enqueue(encoder.encode(`${csvLine(CSV_COLUMNS)}\r\n`));
          return;
        }
        const page = await ledgerPage(db, filter, cursor, 500);
        const lines = page.rows.map((r) =>
          csvLine([
            r.id,
            new Date(r.created_at).toISOString(),
            r.tenant_id,
            r.key_id,
            r.task_id,
            r.kind,
            r.action,
            microsToUsdString(r.amount),
            microsToUsdString(r.balance_after),
            r.reason,
            r.ref_id,
          ]),
        );
        if (lines.length) controller.enqueue(encoder.encode(`${lines.join("\r\n")}\r\n`));
        if (page.nextCursor === null) controller.close();
        else cursor = page.nextCursor;
      },
    });
    return new Response(stream, {
      headers: {
        "content-type": "text/csv; charset=utf-8",
        "content-disposition": 'attachment; filename="ledger.csv"',
      },
    }) as never;
  },
);

const DIMENSIONS = ["day", "tenant", "key", "action"] as const;
export const UsageRowSchema = z
  .object({
    day: z.string().optional(),
    tenant: z.string().optional(),
    key: z.string().nullable().optional(),
    action: z.string().nullable().optional(),
    charged_micros: z.number().int(),
    refunded_micros: z.number().int(),
    net_micros: z.number().int(),
    charged_tasks: z.number().int(),
    refunded_tasks: z.number().int(),
  })
  .openapi("UsageRow");

export function parseGroupBy(value: string | undefined): UsageDimension[] {
  const dims = (value ?? "day,tenant,key,action")
    .split(",")
    .map((d) => d.trim())
    .filter(Boolean);
  for (const d of dims) {
    if (!(DIMENSIONS as readonly string[]).includes(d)) {
      throw new ApiError("invalid_request", `group_by: '${d}' is not one of ${DIMENSIONS.join(", ")}`, {
        field: "group_by",
      });
    }
  }
  return dims as UsageDimension[];
}

adminFinance.openapi(
  createRoute({
    method: "get",
    path: "/admin/usage",
    ...admin,
    summary: "charged, refunded and net totals grouped by day, tenant, key and/or action",
    description: RANGE_DESCRIPTION,
    request: {
      query: LedgerQuery.omit({ kind: true }).extend({
        group_by: z.string().optional().openapi({ example: "day,tenant,key,action" }),
      }),
    },
    responses: {
      200: json(z.object({ group_by: z.array(z.string()), data: z.array(UsageRowSchema) }), "totals"),
      ...errorResponses(400, 401),
    },
  }),
  async (c) => {
    const query = c.req.valid("query");
    const groupBy = parseGroupBy(query.group_by);
    const rows = await usageTotals(c.env.DB, ledgerFilter(query), groupBy);
    return c.json({ group_by: groupBy, data: rows }, 200);
  },
);

const BreachSchema = z
  .object({
    check: z.string(),
    tenant_id: z.string().optional(),
    task_id: z.string().optional(),
    ledger_id: z.number().int().optional(),
    detail: z.string(),
  })
  .openapi("Breach");

adminFinance.openapi(
  createRoute({
    method: "get",
    path: "/admin/reconciliation",
    ...admin,
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
