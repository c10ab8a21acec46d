/**
 * The benchmarks' submit spans (development only): off, nothing is kept; on, each span's
 * wait is kept under its name, a failed one too, and a read with reset starts anew. The
 * debug routes exist only in development (these tests run as production).
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { enableSpans, readSpans, span } from "../src/spans";

const d1Trip = () => env.DB.prepare("SELECT 1 AS one").first<{ one: number }>();

describe("span", () => {
  it("keeps nothing until enabled, then each span's wait under its name", async () => {
    expect(await span("off", d1Trip)).toEqual({ one: 1 });
    expect(readSpans()).toEqual({});

    enableSpans();
    await span("d1", d1Trip);
    await span("d1", d1Trip);
    await expect(span("fails", () => Promise.reject(new Error("no")))).rejects.toThrow("no");
    const spans = readSpans(true);
    expect(Object.keys(spans).sort()).toEqual(["d1", "fails"]);
    expect(spans.d1!.count).toBe(2);
    expect(spans.d1!.mean_ms).toBeGreaterThanOrEqual(0);
    expect(spans.d1!.p90_ms).toBeGreaterThanOrEqual(spans.d1!.p50_ms);
    expect(spans.fails!.count).toBe(1);
    expect(readSpans()).toEqual({});
  });

  it("is not served outside development", async () => {
    for (const path of ["/_debug/spans", "/_debug/storage", "/_debug/d1"]) {
      expect((await SELF.fetch(`https://gateway.test${path}`)).status, path).toBe(404);
    }
  });
});
