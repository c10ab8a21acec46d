import { describe, expect, it } from "vitest";
import {
  assertSafeMicros,
  divideRounded,
  MICROS_PER_USD,
  microsToUsdNumber,
  microsToUsdString,
} from "../../src/domain/money";

describe("microsToUsdString", () => {
  it.each([
    [0, "0.000000"],
    [1, "0.000001"],
    [10, "0.000010"],
    [55_040, "0.055040"],
    [45_040, "0.045040"],
    [100_000, "0.100000"],
    [999_999, "0.999999"],
    [1_000_000, "1.000000"],
    [1_000_001, "1.000001"],
    [123_456_789, "123.456789"],
    [-1, "-0.000001"],
    [-55_040, "-0.055040"],
    [-1_000_000, "-1.000000"],
    [-123_456_789, "-123.456789"],
    [Number.MAX_SAFE_INTEGER, "9007199254.740991"],
    [-Number.MAX_SAFE_INTEGER, "-9007199254.740991"],
  ])("%d micros → %s", (micros, text) => {
    expect(microsToUsdString(micros)).toBe(text);
  });

  it("always has exactly six decimals and round-trips through string arithmetic", () => {
    for (const micros of [7, 70, 700, 7_000, 70_000, 700_000, 7_000_000, 4_294_967_295, 1e12 + 3]) {
      const text = microsToUsdString(micros);
      expect(text).toMatch(/^\d+\.\d{6}$/);
      const [whole, fraction] = text.split(".");
      expect(Number(whole) * MICROS_PER_USD + Number(fraction)).toBe(micros);
    }
  });

  it("the float form is only derived from the exact string", () => {
    expect(microsToUsdNumber(55_040)).toBe(0.05504);
    expect(microsToUsdNumber(45_040)).toBe(0.04504);
    expect(microsToUsdNumber(0)).toBe(0);
    expect(microsToUsdNumber(-100_000)).toBe(-0.1);
  });
});

describe("divideRounded (half away from zero, integers only)", () => {
  it.each([
    [10n, 4n, 3n], // 2.5 → 3
    [14n, 4n, 4n], // 3.5 → 4
    [9n, 4n, 2n], // 2.25 → 2
    [11n, 4n, 3n], // 2.75 → 3
    [-10n, 4n, -3n], // -2.5 → -3
    [-9n, 4n, -2n],
    [-11n, 4n, -3n],
    [0n, 7n, 0n],
    [5n, 10_000n, 0n],
    [5_000n, 10_000n, 1n],
    [4_999n, 10_000n, 0n],
    [-5_000n, 10_000n, -1n],
  ])("%d / %d → %d", (n, d, expected) => {
    expect(divideRounded(n, d)).toBe(expected);
  });

  it("stays exact far beyond 2^53", () => {
    // 900719925474099 × 12000 / 10000 = 1080863910568918.8 → …919 (a float multiply loses this).
    expect(divideRounded(900_719_925_474_099n * 12_000n, 10_000n)).toBe(1_080_863_910_568_919n);
    expect(divideRounded(10n ** 30n + 5n, 10n)).toBe(10n ** 29n + 1n);
  });
});

describe("assertSafeMicros", () => {
  it("accepts safe integers", () => {
    for (const v of [0, 1, -1, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER]) {
      expect(() => assertSafeMicros(v, "amount")).not.toThrow();
    }
  });
  it("rejects fractions, NaN, infinities and unsafe integers", () => {
    for (const v of [0.5, 1.000001, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER + 1]) {
      expect(() => assertSafeMicros(v, "amount")).toThrow(/amount must be an integer number of micro-USD/);
    }
  });
});
