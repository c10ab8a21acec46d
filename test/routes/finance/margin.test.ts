/** GET /admin/margin: revenue (net of refunds), the upstream's reported cost, and margin. */
import { describe, expect, it } from "vitest";
import { finish, PRICE_IMAGINE, taskIdOf, uid } from "../../db/money-helpers";
import { call, submit, tenantWithKey } from "../../helpers";

describe("GET /admin/margin", () => {
  it("per tenant and action: revenue, upstream cost and margin from settled tasks; refunds earn nothing", async () => {
    const t = await tenantWithKey(5_000_000);
    for (const speed of ["fast", "turbo"]) {
      const id = taskIdOf(await submit(t.key, "imagine", { prompt: `margin ${uid()}`, speed }));
      expect((await finish(id, t.key)).status).toBe("SUCCESS");
    }
    const failing = `margin-fail ${uid()} [sim:fail]`;
    const failed = taskIdOf(await submit(t.key, "imagine", { prompt: failing, speed: "fast" }));
    expect((await finish(failed, t.key)).status).toBe("FAILURE");

    const res = await call("GET", `/admin/margin?tenant_id=${t.tenantId}&group_by=tenant,action`, {
      admin: true,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.data).toEqual([
      {
        tenant: t.tenantId,
        action: "imagine",
        tasks: 3,
        revenue_micros: PRICE_IMAGINE.fast + PRICE_IMAGINE.turbo,
        upstream_cost_micros: 55_040 + 100_000,
        margin_micros: PRICE_IMAGINE.fast + PRICE_IMAGINE.turbo - (55_040 + 100_000),
        unknown_cost_tasks: 0,
        negative_margin_tasks: 0,
      },
    ]);
    const byDay = await call("GET", `/admin/margin?tenant_id=${t.tenantId}&group_by=day`, { admin: true });
    expect(byDay.body.data[0].day).toBe(new Date().toISOString().slice(0, 10));
    const byUpstream = await call("GET", `/admin/margin?tenant_id=${t.tenantId}&group_by=upstream`, {
      admin: true,
    });
    expect(byUpstream.body.data).toEqual([
      expect.objectContaining({ upstream: "default", tasks: 3, upstream_cost_micros: 55_040 + 100_000 }),
    ]);
    expect((await call("GET", "/admin/margin?group_by=key", { admin: true })).status).toBe(400);
    expect((await call("GET", "/admin/margin")).status).toBe(401);
  });
});
