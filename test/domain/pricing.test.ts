import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { loadPriceBook } from "../../src/db/prices";
import { ACTIONS, SPEEDS, VIDEO_TYPES } from "../../src/domain/actions";
import {
  type PriceBook,
  type PriceRow,
  priceKeyOf,
  quote,
  UnpricedActionError,
  unitPriceOf,
} from "../../src/domain/pricing";
import {
  IMAGE_ACTIONS_PRICED_LIKE_OTHER,
  LIST_IMAGINE,
  LIST_OTHER,
  LIST_VIDEO,
  PRICE_IMAGINE,
  PRICE_OTHER,
  PRICE_VIDEO,
} from "../db/money-helpers";

/** The seeded table, built from upstream-api.md's list prices (not from the migration). */
function listBook(markupBps = 2000): PriceBook {
  const rows: PriceRow[] = [];
  for (const speed of SPEEDS) {
    rows.push({
      action: "imagine",
      speed,
      resolution: "",
      listMicros: LIST_IMAGINE[speed],
      overrideMicros: null,
    });
    rows.push({ action: "inpaint", speed, resolution: "", listMicros: 0, overrideMicros: null });
    for (const action of IMAGE_ACTIONS_PRICED_LIKE_OTHER) {
      rows.push({ action, speed, resolution: "", listMicros: LIST_OTHER[speed], overrideMicros: null });
    }
  }
  for (const resolution of ["480p", "720p"] as const) {
    rows.push({
      action: "video",
      speed: "",
      resolution,
      listMicros: LIST_VIDEO[resolution],
      overrideMicros: null,
    });
  }
  return { rows, markupBps };
}

const sortRows = (rows: readonly PriceRow[]) =>
  [...rows].sort((a, b) =>
    `${a.action}/${a.speed}/${a.resolution}`.localeCompare(`${b.action}/${b.speed}/${b.resolution}`),
  );

describe("the seeded price table", () => {
  it("is exactly the upstream list prices with a 2000 bps markup", async () => {
    const seeded = await loadPriceBook(env.DB);
    expect(seeded.markupBps).toBe(2000);
    expect(sortRows(seeded.rows)).toEqual(sortRows(listBook().rows));
    // 15 image actions × 3 speeds + 2 video resolutions.
    expect(seeded.rows).toHaveLength(47);
  });

  it("has a row for every action the API accepts", async () => {
    const seeded = await loadPriceBook(env.DB);
    for (const action of ACTIONS)
      expect(
        seeded.rows.some((r) => r.action === action),
        action,
      ).toBe(true);
  });
});

describe("quote: every action × speed", () => {
  const book = listBook();

  it.each(SPEEDS)("imagine %s", (speed) => {
    const q = quote({ action: "imagine", speed }, book);
    expect(q).toEqual({
      unitMicros: PRICE_IMAGINE[speed],
      units: 1,
      totalMicros: PRICE_IMAGINE[speed],
      priceKey: { action: "imagine", speed, resolution: "" },
    });
  });

  for (const action of IMAGE_ACTIONS_PRICED_LIKE_OTHER) {
    it.each(SPEEDS)(`${action} %s`, (speed) => {
      const q = quote({ action, speed }, book);
      expect(q.totalMicros).toBe(PRICE_OTHER[speed]);
      expect(q.units).toBe(1);
      expect(q.priceKey).toEqual({ action, speed, resolution: "" });
    });
  }

  it("speed defaults to relax", () => {
    expect(quote({ action: "imagine" }, book).totalMicros).toBe(54_048);
    expect(quote({ action: "upscale" }, book).totalMicros).toBe(66_048);
    expect(quote({ action: "imagine" }, book).priceKey.speed).toBe("relax");
  });

  it.each(SPEEDS)("inpaint %s is free", (speed) => {
    expect(quote({ action: "inpaint", speed }, book).totalMicros).toBe(0);
  });

  it("modal is charged (once per call, like any image action)", () => {
    expect(quote({ action: "modal" }, book).totalMicros).toBe(66_048);
    expect(quote({ action: "modal", speed: "turbo" }, book).totalMicros).toBe(120_000);
  });

  it("the speed of a non-image price key is ignored for video", () => {
    expect(priceKeyOf({ action: "video", speed: "turbo" })).toEqual({
      action: "video",
      speed: "",
      resolution: "480p",
    });
  });
});

describe("quote: video", () => {
  const book = listBook();

  it.each([
    [undefined, "480p"],
    ["vid_1.1_i2v_480", "480p"],
    ["vid_1.1_i2v_720", "720p"],
    ["vid_1.1_i2v_start_end_480", "480p"],
    ["vid_1.1_i2v_start_end_720", "720p"],
  ] as const)("video_type %s → %s", (videoType, resolution) => {
    expect(priceKeyOf({ action: "video", videoType }).resolution).toBe(resolution);
    expect(quote({ action: "video", videoType }, book).unitMicros).toBe(PRICE_VIDEO[resolution]);
  });

  it("covers all video types of the contract", () => {
    expect([...VIDEO_TYPES].sort()).toEqual(
      ["vid_1.1_i2v_480", "vid_1.1_i2v_720", "vid_1.1_i2v_start_end_480", "vid_1.1_i2v_start_end_720"].sort(),
    );
  });

  it("an end_url keeps the resolution of the video_type", () => {
    const endUrl = "https://example.com/last.png";
    expect(quote({ action: "video", videoType: "vid_1.1_i2v_720", endUrl }, book).totalMicros).toBe(480_000);
    expect(quote({ action: "video", videoType: "vid_1.1_i2v_480", endUrl }, book).totalMicros).toBe(240_000);
    expect(quote({ action: "video", endUrl }, book).totalMicros).toBe(240_000);
  });

  for (const resolution of ["480p", "720p"] as const) {
    const videoType = resolution === "480p" ? "vid_1.1_i2v_480" : "vid_1.1_i2v_720";
    it.each([1, 2, 4])(`${resolution} × batch_size %d`, (batchSize) => {
      const q = quote({ action: "video", videoType, batchSize }, book);
      expect(q.units).toBe(batchSize);
      expect(q.unitMicros).toBe(PRICE_VIDEO[resolution]);
      expect(q.totalMicros).toBe(PRICE_VIDEO[resolution] * batchSize);
    });
    it.each([undefined, null, 0, 3, 5, 8, -2, 2.5, "2", "4", Number.NaN])(
      `${resolution}: batch_size %s counts as 1`,
      (batchSize) => {
        const q = quote({ action: "video", videoType, batchSize }, book);
        expect(q.units).toBe(1);
        expect(q.totalMicros).toBe(PRICE_VIDEO[resolution]);
      },
    );
  }

  it("batch_size never multiplies image actions", () => {
    expect(quote({ action: "imagine", batchSize: 4 }, book).totalMicros).toBe(54_048);
  });
});

describe("overrides, markup and tenant multiplier", () => {
  it("an override replaces list price and markup", () => {
    const book = listBook();
    const row = book.rows.find((r) => r.action === "imagine" && r.speed === "fast")!;
    row.overrideMicros = 70_001;
    expect(quote({ action: "imagine", speed: "fast" }, book).totalMicros).toBe(70_001);
    expect(unitPriceOf(row, 999_999)).toBe(70_001);
    // other rows keep the markup
    expect(quote({ action: "imagine", speed: "relax" }, book).totalMicros).toBe(54_048);
  });

  it("an override below the list price is floored at the list price (never forwarded below cost)", () => {
    const book = listBook();
    book.rows.find((r) => r.action === "describe" && r.speed === "relax")!.overrideMicros = 0;
    expect(quote({ action: "describe" }, book).totalMicros).toBe(55_040);
    expect(quote({ action: "describe", speed: "fast" }, book).totalMicros).toBe(66_048);
  });

  it("video overrides are per resolution and still multiplied by batch_size", () => {
    const book = listBook();
    book.rows.find((r) => r.action === "video" && r.resolution === "720p")!.overrideMicros = 433_333;
    expect(quote({ action: "video", videoType: "vid_1.1_i2v_720", batchSize: 4 }, book).totalMicros).toBe(
      1_733_332,
    );
    expect(quote({ action: "video", batchSize: 4 }, book).totalMicros).toBe(960_000);
  });

  it.each([
    [0, 45_040],
    [2000, 54_048],
    [1, 45_045], // 45044.504 → 45045
    [-5000, 45_040], // 22,520 would be below the list price: floored
    [-9_999, 45_040], // 4.504 → 5, floored
    [10_000, 90_080],
  ])("markup %d bps on imagine relax → %d", (markupBps, expected) => {
    expect(quote({ action: "imagine" }, listBook(markupBps)).totalMicros).toBe(expected);
  });

  it("tenant multiplier applies after the markup, rounded half away from zero", () => {
    const book = listBook();
    expect(quote({ action: "imagine" }, book, 10_000).totalMicros).toBe(54_048);
    expect(quote({ action: "imagine" }, book, 15_000).totalMicros).toBe(81_072);
    expect(quote({ action: "imagine" }, book, 11_111).totalMicros).toBe(60_053); // 60053.7328
    // Discounts never go below the upstream's list price (27,024 / 18,014 / 5 would).
    expect(quote({ action: "imagine" }, book, 5_000).totalMicros).toBe(45_040);
    expect(quote({ action: "imagine" }, book, 3_333).totalMicros).toBe(45_040);
    expect(quote({ action: "imagine" }, book, 1).totalMicros).toBe(45_040);
    expect(quote({ action: "upscale", speed: "turbo" }, book, 12_345).totalMicros).toBe(148_140);
  });

  it("with a multiplier, video rounds the unit price and then multiplies by batch_size", () => {
    const q = quote({ action: "video", batchSize: 4 }, listBook(), 13_333);
    expect(q.unitMicros).toBe(319_992); // 240000 × 1.3333
    expect(q.totalMicros).toBe(1_279_968);
    // 480000 × 0.0007 = 336 would be below the 720p list price: the unit is floored, then × batch.
    const odd = quote({ action: "video", videoType: "vid_1.1_i2v_720", batchSize: 2 }, listBook(), 7);
    expect(odd.unitMicros).toBe(400_000);
    expect(odd.totalMicros).toBe(800_000);
  });

  it("exact .5 cases round up where floating point would round down", () => {
    // 50 × 1.15 = 57.49999999999999 in floating point; exactly 57.5 → 58.
    const book: PriceBook = {
      markupBps: 1500,
      rows: [{ action: "imagine", speed: "relax", resolution: "", listMicros: 50, overrideMicros: null }],
    };
    expect(quote({ action: "imagine" }, book).totalMicros).toBe(58);
    const viaMultiplier: PriceBook = {
      markupBps: 0,
      rows: [{ action: "imagine", speed: "relax", resolution: "", listMicros: 50, overrideMicros: null }],
    };
    expect(quote({ action: "imagine" }, viaMultiplier, 11_500).totalMicros).toBe(58);
    expect(quote({ action: "imagine" }, viaMultiplier, 5_700 + 10_000).totalMicros).toBe(79);
  });

  it("large prices stay exact integers (no float drift)", () => {
    const book: PriceBook = {
      markupBps: 2000,
      rows: [
        {
          action: "imagine",
          speed: "relax",
          resolution: "",
          listMicros: 900_719_925_474_099,
          overrideMicros: null,
        },
      ],
    };
    const q = quote({ action: "imagine" }, book);
    expect(q.totalMicros).toBe(1_080_863_910_568_919);
    expect(Number.isSafeInteger(q.totalMicros)).toBe(true);
  });

  it("every quote over the seeded table is a non-negative safe integer", () => {
    const book = listBook();
    for (const multiplier of [1, 7, 3_333, 9_999, 10_000, 10_001, 12_345, 1_000_000]) {
      for (const row of book.rows) {
        const q = quote(
          {
            action: row.action,
            speed: row.speed || undefined,
            videoType: row.resolution === "720p" ? "vid_1.1_i2v_720" : undefined,
            batchSize: 4,
          },
          book,
          multiplier,
        );
        expect(Number.isSafeInteger(q.totalMicros)).toBe(true);
        expect(q.totalMicros).toBeGreaterThanOrEqual(0);
      }
    }
  });
});

describe("missing prices", () => {
  it("an action without a row throws UnpricedActionError naming the key", () => {
    const book: PriceBook = { markupBps: 2000, rows: listBook().rows.filter((r) => r.action !== "zoom") };
    expect(() => quote({ action: "zoom", speed: "fast" }, book)).toThrow(UnpricedActionError);
    expect(() => quote({ action: "zoom", speed: "fast" }, book)).toThrow(
      "no price configured for zoom/fast/-",
    );
    const noVideo: PriceBook = {
      markupBps: 2000,
      rows: listBook().rows.filter((r) => r.resolution !== "720p"),
    };
    expect(() => quote({ action: "video", videoType: "vid_1.1_i2v_720" }, noVideo)).toThrow(
      "no price configured for video/-/720p",
    );
  });
});
