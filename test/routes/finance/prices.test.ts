/**
 * The operator's price table (GET/PUT /admin/prices) and what submits really charge.
 * Prices are cached per isolate for 5 s; the PUT handler clears that cache, so every
 * change here goes through the API and the very next submit must see it.
 */
import { describe, expect, it } from "vitest";
import { SPEEDS } from "../../../src/domain/actions";
import {
  admin,
  finish,
  IMAGE_ACTIONS_PRICED_LIKE_OTHER,
  LIST_IMAGINE,
  LIST_OTHER,
  PRICE_IMAGINE,
  PRICE_OTHER,
  row,
  rows,
  taskIdOf,
  tenantRow,
  uid,
  upscaledParent,
} from "../../db/money-helpers";
import { call, submit, type TenantWithKey, tenantWithKey } from "../../helpers";

interface PriceJson {
  action: string;
  speed: string;
  resolution: string;
  list_micros: number;
  override_micros: number | null;
  price_micros: number;
}

async function prices(): Promise<{ markup_bps: number; data: PriceJson[] }> {
  const res = await admin("GET", "/admin/prices");
  expect(res.status).toBe(200);
  return res.body;
}

const find = (table: { data: PriceJson[] }, action: string, speed = "", resolution = "") =>
  table.data.find((p) => p.action === action && p.speed === speed && p.resolution === resolution)!;

async function chargeOf(taskId: string): Promise<number> {
  const charge = await row<{ amount: number }>(
    "SELECT amount FROM ledger WHERE task_id = ?1 AND kind = 'charge'",
    taskId,
  );
  return charge ? -charge.amount : 0;
}

/** Submits and returns what the ledger charged for it (also checked against tasks.cost and the balance). */
async function charged(t: TenantWithKey, action: string, body: Record<string, unknown>): Promise<number> {
  const before = (await tenantRow(t.tenantId)).balance;
  const taskId = taskIdOf(await submit(t.key, action, body));
  const amount = await chargeOf(taskId);
  const task = await row<{ cost: number }>("SELECT cost FROM tasks WHERE id = ?1", taskId);
  expect(task!.cost).toBe(amount);
  expect((await tenantRow(t.tenantId)).balance).toBe(before - amount);
  return amount;
}

const IMG = "https://example.com/frame.png";

/** The raw rows behind the price table (other tables change as background tasks finish). */
async function priceTables() {
  return {
    prices: await rows("SELECT * FROM prices ORDER BY action, speed, resolution"),
    settings: await rows("SELECT * FROM settings ORDER BY name"),
  };
}

describe("GET /admin/prices", () => {
  it("needs the operator token", async () => {
    expect((await call("GET", "/admin/prices")).status).toBe(401);
    const t = await tenantWithKey(0);
    expect((await call("GET", "/admin/prices", { key: t.key })).status).toBe(401);
  });

  it("lists every seeded row with list price, override and the tenant-facing price", async () => {
    const table = await prices();
    expect(table.markup_bps).toBe(2000);
    expect(table.data).toHaveLength(47);
    for (const speed of SPEEDS) {
      expect(find(table, "imagine", speed)).toEqual({
        action: "imagine",
        speed,
        resolution: "",
        list_micros: LIST_IMAGINE[speed],
        override_micros: null,
        price_micros: PRICE_IMAGINE[speed],
      });
      for (const action of IMAGE_ACTIONS_PRICED_LIKE_OTHER) {
        expect(find(table, action, speed)).toMatchObject({
          list_micros: LIST_OTHER[speed],
          price_micros: PRICE_OTHER[speed],
        });
      }
      expect(find(table, "inpaint", speed)).toMatchObject({ list_micros: 0, price_micros: 0 });
    }
    expect(find(table, "video", "", "480p")).toMatchObject({ list_micros: 200_000, price_micros: 240_000 });
    expect(find(table, "video", "", "720p")).toMatchObject({ list_micros: 400_000, price_micros: 480_000 });
  });
});

describe("what a submit charges (seeded prices)", () => {
  it.each(SPEEDS)("imagine, edits, blend, describe at %s", async (speed) => {
    const t = await tenantWithKey(5_000_000);
    expect(await charged(t, "imagine", { prompt: `p ${uid()}`, speed })).toBe(PRICE_IMAGINE[speed]);
    expect(await charged(t, "edits", { prompt: `e ${uid()}`, image_urls: [IMG], speed })).toBe(
      PRICE_OTHER[speed],
    );
    expect(await charged(t, "blend", { image_urls: [IMG, `${IMG}?b`], speed })).toBe(PRICE_OTHER[speed]);
    expect(await charged(t, "describe", { image_urls: [IMG], speed })).toBe(PRICE_OTHER[speed]);
  });

  it("imagine without speed is charged at relax; the bare generations path too", async () => {
    const t = await tenantWithKey(5_000_000);
    expect(await charged(t, "imagine", { prompt: `default ${uid()}` })).toBe(54_048);
    const bare = await call("POST", "/v1/midjourney/generations", {
      key: t.key,
      body: { prompt: `b ${uid()}` },
    });
    expect(await chargeOf(taskIdOf(bare))).toBe(54_048);
  });

  it("video: 480p/720p × batch_size 1, 2, 4; other sizes count as 1; end_url keeps the resolution", async () => {
    const t = await tenantWithKey(20_000_000);
    const cases: [Record<string, unknown>, number][] = [
      [{}, 240_000],
      [{ batch_size: 1 }, 240_000],
      [{ batch_size: 2 }, 480_000],
      [{ batch_size: 4 }, 960_000],
      [{ batch_size: 3 }, 240_000],
      [{ batch_size: 0 }, 240_000],
      [{ batch_size: 8 }, 240_000],
      [{ video_type: "vid_1.1_i2v_720" }, 480_000],
      [{ video_type: "vid_1.1_i2v_720", batch_size: 2 }, 960_000],
      [{ video_type: "vid_1.1_i2v_720", batch_size: 4 }, 1_920_000],
      [{ video_type: "vid_1.1_i2v_720", batch_size: 5 }, 480_000],
      [{ video_type: "vid_1.1_i2v_480", end_url: `${IMG}?end` }, 240_000],
      [{ video_type: "vid_1.1_i2v_720", end_url: `${IMG}?end`, batch_size: 2 }, 960_000],
      [{ video_type: "vid_1.1_i2v_start_end_720", end_url: `${IMG}?end` }, 480_000],
      [{ video_type: "vid_1.1_i2v_start_end_480", end_url: `${IMG}?end`, batch_size: 4 }, 960_000],
    ];
    for (const [extra, expected] of cases) {
      expect(await charged(t, "video", { image_urls: [IMG], ...extra }), JSON.stringify(extra)).toBe(
        expected,
      );
    }
  });

  it("follow-ups are charged like other image actions; inpaint is free and its /modal is charged once", async () => {
    const t = await tenantWithKey(20_000_000);
    const { grid, upscaled } = await upscaledParent(t);
    expect(await chargeOf(grid)).toBe(54_048);
    expect(await chargeOf(upscaled)).toBe(66_048);
    expect(await charged(t, "upscale", { task_id: grid, index: 2, speed: "turbo" })).toBe(120_000);
    expect(await charged(t, "variation", { task_id: grid, index: 1, speed: "fast" })).toBe(66_048);
    expect(await charged(t, "high-variation", { task_id: grid, index: 2 })).toBe(66_048);
    expect(await charged(t, "low-variation", { task_id: upscaled, index: 1, speed: "turbo" })).toBe(120_000);
    expect(await charged(t, "reroll", { task_id: grid })).toBe(66_048);
    expect(await charged(t, "remix-strong", { task_id: grid, index: 3 })).toBe(66_048);
    expect(await charged(t, "remix-subtle", { task_id: grid, index: 4, speed: "turbo" })).toBe(120_000);
    expect(await charged(t, "zoom", { task_id: upscaled, zoom_ratio: 2 })).toBe(66_048);
    expect(await charged(t, "pan", { task_id: upscaled, direction: "left", speed: "fast" })).toBe(66_048);
    expect(await charged(t, "video", { task_id: grid, index: 0, batch_size: 2 })).toBe(480_000);

    const inpaint = taskIdOf(await submit(t.key, "inpaint", { task_id: upscaled, speed: "turbo" }));
    expect(await chargeOf(inpaint)).toBe(0);
    const balance = (await tenantRow(t.tenantId)).balance;
    const modal = await submit(t.key, "modal", { task_id: inpaint, prompt: `fill ${uid()}`, speed: "turbo" });
    expect(modal.status, JSON.stringify(modal.body)).toBe(200);
    expect(await chargeOf(inpaint)).toBe(120_000);
    expect((await row<{ cost: number }>("SELECT cost FROM tasks WHERE id = ?1", inpaint))!.cost).toBe(
      120_000,
    );
    expect((await tenantRow(t.tenantId)).balance).toBe(balance - 120_000);
    expect((await finish(inpaint, t.key)).status).toBe("SUCCESS");
    expect((await tenantRow(t.tenantId)).balance).toBe(balance - 120_000);
  });

  it("a tenant multiplier applies to the next submit, rounded exactly", async () => {
    const t = await tenantWithKey(20_000_000);
    const patch = async (bps: number) => {
      const res = await admin("PATCH", `/admin/tenants/${t.tenantId}`, { price_multiplier_bps: bps });
      expect(res.status).toBe(200);
    };
    await patch(15_000);
    expect(await charged(t, "imagine", { prompt: `m ${uid()}` })).toBe(81_072);
    await patch(13_333);
    expect(await charged(t, "imagine", { prompt: `m ${uid()}` })).toBe(72_062); // 54048 × 1.3333 = 72062.1984
    expect(await charged(t, "video", { image_urls: [IMG], batch_size: 4 })).toBe(1_279_968);
    // A discount below the upstream's list price is floored at it.
    await patch(3_333);
    expect(await charged(t, "imagine", { prompt: `m ${uid()}` })).toBe(45_040);
    expect(await charged(t, "video", { image_urls: [IMG], batch_size: 4 })).toBe(800_000);
    await patch(10_000);
    expect(await charged(t, "imagine", { prompt: `m ${uid()}` })).toBe(54_048);
    // Another tenant is not affected.
    const other = await tenantWithKey(1_000_000);
    await patch(20_000);
    expect(await charged(other, "imagine", { prompt: `o ${uid()}` })).toBe(54_048);
    expect(await charged(t, "imagine", { prompt: `m ${uid()}` })).toBe(108_096);
  });
});

describe("PUT /admin/prices", () => {
  it("needs the operator token and writes nothing without it", async () => {
    const before = await prices();
    const res = await call("PUT", "/admin/prices", { body: { markup_bps: 0 } });
    expect(res.status).toBe(401);
    expect(await prices()).toEqual(before);
  });

  it("a new markup changes every non-overridden price and the next submit's charge", async () => {
    const t = await tenantWithKey(5_000_000);
    expect(await charged(t, "imagine", { prompt: `warm cache ${uid()}` })).toBe(54_048);
    const res = await admin("PUT", "/admin/prices", { markup_bps: 1_500 });
    expect(res.status).toBe(200);
    expect(res.body.markup_bps).toBe(1_500);
    expect(find(res.body, "imagine", "relax").price_micros).toBe(51_796); // 45040 × 1.15
    expect(find(res.body, "imagine", "turbo").price_micros).toBe(115_000);
    expect(find(res.body, "video", "", "720p").price_micros).toBe(460_000);
    expect(await prices()).toEqual(res.body);
    expect(await charged(t, "imagine", { prompt: `after markup ${uid()}` })).toBe(51_796);
    expect(await charged(t, "describe", { image_urls: [IMG] })).toBe(63_296); // 55040 × 1.15
    expect((await admin("PUT", "/admin/prices", { markup_bps: 2_000 })).status).toBe(200);
    expect(await charged(t, "imagine", { prompt: `markup back ${uid()}` })).toBe(54_048);
  });

  it("an override is charged as is (then the tenant multiplier); null clears it", async () => {
    const t = await tenantWithKey(5_000_000);
    const set = await admin("PUT", "/admin/prices", {
      prices: [
        { action: "imagine", speed: "fast", override_micros: 70_001 },
        { action: "video", resolution: "720p", override_micros: 433_333 },
      ],
    });
    expect(set.status).toBe(200);
    expect(find(set.body, "imagine", "fast")).toMatchObject({
      list_micros: 55_040,
      override_micros: 70_001,
      price_micros: 70_001,
    });
    expect(await charged(t, "imagine", { prompt: `override ${uid()}`, speed: "fast" })).toBe(70_001);
    expect(await charged(t, "imagine", { prompt: `not overridden ${uid()}`, speed: "relax" })).toBe(54_048);
    expect(
      await charged(t, "video", { image_urls: [IMG], video_type: "vid_1.1_i2v_720", batch_size: 4 }),
    ).toBe(1_733_332);
    await admin("PATCH", `/admin/tenants/${t.tenantId}`, { price_multiplier_bps: 15_000 });
    expect(await charged(t, "imagine", { prompt: `override x1.5 ${uid()}`, speed: "fast" })).toBe(105_002); // 105001.5
    await admin("PATCH", `/admin/tenants/${t.tenantId}`, { price_multiplier_bps: 10_000 });

    const cleared = await admin("PUT", "/admin/prices", {
      prices: [
        { action: "imagine", speed: "fast", override_micros: null },
        { action: "video", resolution: "720p", override_micros: null },
      ],
    });
    expect(cleared.status).toBe(200);
    expect(find(cleared.body, "imagine", "fast")).toMatchObject({
      override_micros: null,
      price_micros: 66_048,
    });
    expect(await charged(t, "imagine", { prompt: `cleared ${uid()}`, speed: "fast" })).toBe(66_048);
  });

  it("an override below the list price is refused (the margin is never negative); a list price change moves the marked-up price", async () => {
    const t = await tenantWithKey(5_000_000);
    const before = await priceTables();
    const below = await admin("PUT", "/admin/prices", {
      prices: [{ action: "describe", speed: "relax", override_micros: 0 }],
    });
    expect(below.status).toBe(400);
    expect(below.body.error).toMatchObject({ code: "invalid_request", field: "prices.0.override_micros" });
    expect(await priceTables()).toEqual(before);
    expect(await charged(t, "describe", { image_urls: [IMG] })).toBe(66_048);
    // A lower list price (the upstream's own cost) lowers the marked-up price, and an override at it is fine.
    expect(
      (
        await admin("PUT", "/admin/prices", {
          prices: [
            { action: "describe", speed: "relax", list_micros: 10_000, override_micros: 10_000 },
            { action: "blend", speed: "relax", list_micros: 10_000 },
          ],
        })
      ).status,
    ).toBe(200);
    // (No submit at these prices: the simulator still bills 55,040, and reconciliation would
    // rightly flag the negative margin; see test/services/custody.test.ts.)
    const table = await prices();
    expect(find(table, "describe", "relax")).toMatchObject({ list_micros: 10_000, price_micros: 10_000 });
    expect(find(table, "blend", "relax")).toMatchObject({ list_micros: 10_000, price_micros: 12_000 });
    await admin("PUT", "/admin/prices", {
      prices: [
        { action: "describe", speed: "relax", override_micros: null, list_micros: 55_040 },
        { action: "blend", speed: "relax", list_micros: 55_040 },
      ],
    });
    expect(await charged(t, "describe", { image_urls: [IMG] })).toBe(66_048);
  });

  it("a tenant discount never prices below the list price", async () => {
    const t = await tenantWithKey(5_000_000, {}, { price_multiplier_bps: 5_000 });
    // 54,048 × 0.5 = 27,024 would be below the upstream's 45,040: the list price is the floor.
    expect(await charged(t, "imagine", { prompt: `discount ${uid()}` })).toBe(45_040);
  });

  it("all or nothing: an unknown row → 400 and neither the markup nor the other rows change", async () => {
    const t = await tenantWithKey(5_000_000);
    expect(await charged(t, "imagine", { prompt: `before bad put ${uid()}` })).toBe(54_048);
    const before = await prices();
    const dbBefore = await priceTables();
    for (const bad of [
      { action: "video", speed: "relax" }, // video has no speed rows
      { action: "imagine", speed: "" }, // image actions have no speed-less row
      { action: "imagine", speed: "relax", resolution: "720p" },
    ]) {
      const res = await admin("PUT", "/admin/prices", {
        markup_bps: 9_000,
        prices: [
          { action: "imagine", speed: "relax", override_micros: 99_999 },
          { ...bad, override_micros: 99_999 },
          { action: "zoom", speed: "fast", list_micros: 1 },
        ],
      });
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(res.body.error.code).toBe("invalid_request");
      expect(res.body.error.field).toBe("prices.1");
      expect(await prices()).toEqual(before);
    }
    expect(await priceTables()).toEqual(dbBefore);
    expect(await charged(t, "imagine", { prompt: `after bad put ${uid()}` })).toBe(54_048);
  });

  it("inpaint can be priced (a task carries one charge per step): the price is taken, and 0 or null frees it again", async () => {
    const priced = await admin("PUT", "/admin/prices", {
      prices: [{ action: "inpaint", speed: "fast", override_micros: 7_000 }],
    });
    expect(priced.status, JSON.stringify(priced.body)).toBe(200);
    expect(find(priced.body, "inpaint", "fast")).toMatchObject({
      override_micros: 7_000,
      price_micros: 7_000,
    });
    const zero = await admin("PUT", "/admin/prices", {
      prices: [
        { action: "inpaint", speed: "fast", override_micros: 0 },
        { action: "inpaint", speed: "fast", override_micros: null, list_micros: 0 },
      ],
    });
    expect(zero.status).toBe(200);
    expect(find(zero.body, "inpaint", "fast")).toMatchObject({ override_micros: null, price_micros: 0 });
  });

  it("invalid bodies are refused and change nothing", async () => {
    const before = await prices();
    for (const body of [
      { prices: [{ action: "imagine", speed: "relax", override_micros: -1 }] },
      { prices: [{ action: "imagine", speed: "relax", list_micros: -5 }] },
      { prices: [{ action: "imagine", speed: "relax", override_micros: 1.5 }] },
      { prices: [{ action: "paint", speed: "relax", override_micros: 1 }] },
      { prices: [{ action: "imagine", speed: "slow", override_micros: 1 }] },
      { prices: [{ action: "imagine", speed: "relax", price_micros: 1 }] },
      { markup_bps: 1.5 },
      { markup_bps: -10_000 },
      { markup_bps: "2000" },
      { surcharge: 1 },
    ]) {
      const res = await admin("PUT", "/admin/prices", body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe("invalid_request");
    }
    expect(await prices()).toEqual(before);
  });
});

describe("after all price changes", () => {
  it("the books reconcile", async () => {
    const report = await call("GET", "/admin/reconciliation", { admin: true });
    expect(report.body.breaches).toEqual([]);
    expect(report.body.ok).toBe(true);
  });
});
