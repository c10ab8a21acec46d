/**
 * GET /admin/usage: charged, refunded and net totals grouped by day, tenant, key and
 * action. The data is written through the real admission and settlement batches at
 * fixed dates, so every expected number is known exactly.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { admit, settleTask } from "../../../src/db/admission";
import { newTaskId } from "../../../src/domain/ids";
import { admin } from "../../db/money-helpers";
import { call, type TenantWithKey, tenantWithKey } from "../../helpers";

const D1 = Date.parse("2026-02-10T00:00:00Z");
const D2 = Date.parse("2026-02-11T00:00:00Z");
const HOUR = 3_600_000;
/** The fixtures' month: reads without `from` cover only the last 30 days. */
const FEB = "from=2026-02-01T00:00:00Z&to=2026-03-01T00:00:00Z";

let t: TenantWithKey;
let k1: string;
let k2: string;
let other: TenantWithKey;

async function task(
  tenantId: string,
  keyId: string,
  action: string,
  cost: number,
  at: number,
  outcome: "keep" | "refund",
) {
  const taskId = newTaskId();
  await admit(env.DB, {
    tenantId,
    keyId,
    taskId,
    action,
    parentTaskId: null,
    costMicros: cost,
    kind: "new_task",
    idempotency: null,
    at,
  });
  const settled = await settleTask(env.DB, {
    taskId,
    status: outcome === "keep" ? "SUCCESS" : "FAILURE",
    refund: outcome === "refund",
    reason: outcome === "refund" ? "upstream_failure" : null,
    failReason: null,
    upstreamTaskId: null,
    at: at + HOUR,
  });
  expect(settled).toBe(true);
}

const row = (
  dims: Record<string, string>,
  charged: number,
  refunded: number,
  chargedTasks: number,
  refundedTasks: number,
) => ({
  ...dims,
  charged_micros: charged,
  refunded_micros: refunded,
  net_micros: charged - refunded,
  charged_tasks: chargedTasks,
  refunded_tasks: refundedTasks,
});

async function usage(query: string) {
  const res = await admin("GET", `/admin/usage?${query}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as { group_by: string[]; data: Record<string, unknown>[] };
}

beforeAll(async () => {
  t = await tenantWithKey(10_000_000);
  k1 = t.keyId;
  k2 = (await admin("POST", `/admin/tenants/${t.tenantId}/keys`, { name: "second" })).body.id;
  other = await tenantWithKey(10_000_000);
  await task(t.tenantId, k1, "imagine", 54_048, D1 + 1 * HOUR, "keep");
  await task(t.tenantId, k1, "imagine", 54_048, D1 + 2 * HOUR, "refund");
  await task(t.tenantId, k2, "describe", 66_048, D1 + 3 * HOUR, "keep");
  await task(t.tenantId, k1, "imagine", 120_000, D2 + 1 * HOUR, "keep");
  await task(t.tenantId, k2, "describe", 66_048, D2 + 2 * HOUR, "refund");
  await task(t.tenantId, k2, "video", 960_000, D2 + 3 * HOUR, "keep");
  await task(other.tenantId, other.keyId, "imagine", 54_048, D1 + 5 * HOUR, "keep");
  // Top-ups and adjustments are not usage.
  await admin("POST", `/admin/tenants/${t.tenantId}/adjustments`, { amount_micros: -5, reason: "fee" });
});

describe("GET /admin/usage", () => {
  it("groups by day, tenant, key and action by default", async () => {
    const res = await usage(`${FEB}&tenant_id=${t.tenantId}`);
    expect(res.group_by).toEqual(["day", "tenant", "key", "action"]);
    const cmp = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
    const expected = [
      { day: "2026-02-10", key: k1, action: "imagine", v: [108_096, 54_048, 2, 1] },
      { day: "2026-02-10", key: k2, action: "describe", v: [66_048, 0, 1, 0] },
      { day: "2026-02-11", key: k1, action: "imagine", v: [120_000, 0, 1, 0] },
      { day: "2026-02-11", key: k2, action: "describe", v: [66_048, 66_048, 1, 1] },
      { day: "2026-02-11", key: k2, action: "video", v: [960_000, 0, 1, 0] },
    ]
      .sort((x, y) => cmp(x.day, y.day) || cmp(x.key, y.key) || cmp(x.action, y.action))
      .map((e) => {
        const [charged, refunded, chargedTasks, refundedTasks] = e.v as [number, number, number, number];
        const dims = { day: e.day, tenant: t.tenantId, key: e.key, action: e.action };
        return row(dims, charged, refunded, chargedTasks, refundedTasks);
      });
    expect(res.data).toEqual(expected);
  });

  it("groups by a single dimension", async () => {
    expect((await usage(`${FEB}&tenant_id=${t.tenantId}&group_by=action`)).data).toEqual([
      row({ action: "describe" }, 132_096, 66_048, 2, 1),
      row({ action: "imagine" }, 228_096, 54_048, 3, 1),
      row({ action: "video" }, 960_000, 0, 1, 0),
    ]);
    expect((await usage(`${FEB}&tenant_id=${t.tenantId}&group_by=day`)).data).toEqual([
      row({ day: "2026-02-10" }, 174_144, 54_048, 3, 1),
      row({ day: "2026-02-11" }, 1_146_048, 66_048, 3, 1),
    ]);
    const byKey = (await usage(`${FEB}&tenant_id=${t.tenantId}&group_by=key`)).data;
    expect(byKey).toHaveLength(2);
    expect(byKey.find((r) => r.key === k1)).toEqual(row({ key: k1 }, 228_096, 54_048, 3, 1));
    expect(byKey.find((r) => r.key === k2)).toEqual(row({ key: k2 }, 1_092_096, 66_048, 3, 1));
  });

  it("group_by tenant separates tenants; no dimension gives one total", async () => {
    const byTenant = (await usage(`${FEB}&group_by=tenant`)).data;
    expect(byTenant.find((r) => r.tenant === t.tenantId)).toEqual(
      row({ tenant: t.tenantId }, 1_320_192, 120_096, 6, 2),
    );
    expect(byTenant.find((r) => r.tenant === other.tenantId)).toEqual(
      row({ tenant: other.tenantId }, 54_048, 0, 1, 0),
    );
    expect((await usage(`${FEB}&tenant_id=${t.tenantId}&group_by=`)).data).toEqual([
      row({}, 1_320_192, 120_096, 6, 2),
    ]);
    expect((await usage("tenant_id=ten_nobody&group_by=")).data).toEqual([row({}, 0, 0, 0, 0)]);
  });

  it("filters by key, action and time", async () => {
    expect((await usage(`${FEB}&key_id=${k2}&group_by=action`)).data).toEqual([
      row({ action: "describe" }, 132_096, 66_048, 2, 1),
      row({ action: "video" }, 960_000, 0, 1, 0),
    ]);
    expect((await usage(`${FEB}&tenant_id=${t.tenantId}&action=imagine&group_by=day`)).data).toEqual([
      row({ day: "2026-02-10" }, 108_096, 54_048, 2, 1),
      row({ day: "2026-02-11" }, 120_000, 0, 1, 0),
    ]);
    expect(
      (
        await usage(
          `tenant_id=${t.tenantId}&from=2026-02-11T00:00:00Z&to=2026-02-12T00:00:00Z&group_by=action`,
        )
      ).data,
    ).toEqual([
      row({ action: "describe" }, 66_048, 66_048, 1, 1),
      row({ action: "imagine" }, 120_000, 0, 1, 0),
      row({ action: "video" }, 960_000, 0, 1, 0),
    ]);
    // The refund of D1's second imagine happened at 03:00; a window that ends before it sees only the charge.
    expect(
      (
        await usage(
          `tenant_id=${t.tenantId}&from=2026-02-10T00:00:00Z&to=2026-02-10T03:00:00Z&group_by=action`,
        )
      ).data,
    ).toEqual([row({ action: "imagine" }, 108_096, 0, 2, 0)]);
  });

  it("refuses unknown dimensions and bad times, and needs the operator token", async () => {
    for (const query of ["group_by=week", "group_by=day,hour", "from=soon", "action=paint"]) {
      const res = await admin("GET", `/admin/usage?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.body.error.code).toBe("invalid_request");
    }
    expect((await call("GET", "/admin/usage")).status).toBe(401);
  });

  it("the books reconcile", async () => {
    const report = await call("GET", "/admin/reconciliation", { admin: true });
    expect(report.body.breaches).toEqual([]);
    expect(report.body.ok).toBe(true);
  });
});
