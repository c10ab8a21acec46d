import { describe, expect, it } from "vitest";
import {
  billableParams,
  MAX_JOBS,
  permutationCount,
  UnbillableRequest,
} from "../../src/domain/billable-params";

const refused = (fn: () => unknown, field: string) => {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(UnbillableRequest);
    expect((error as UnbillableRequest).field).toBe(field);
    return (error as Error).message;
  }
  throw new Error("expected a refusal");
};

describe("billableParams: what changes the upstream's bill, from fields and prompt", () => {
  it("speed comes from the field, else from --fast/--relax/--turbo in the prompt (also with an em dash)", () => {
    expect(billableParams("imagine", { prompt: "a fox" }).speed).toBe("relax");
    expect(billableParams("imagine", { prompt: "a fox", speed: "fast" }).speed).toBe("fast");
    expect(billableParams("imagine", { prompt: "a fox --turbo" }).speed).toBe("turbo");
    expect(billableParams("imagine", { prompt: "a fox \u2014turbo --ar 16:9" }).speed).toBe("turbo");
    expect(billableParams("imagine", { prompt: "a fox --TURBO" }).speed).toBe("turbo");
    expect(billableParams("imagine", { prompt: "--fast a fox", speed: "fast" }).speed).toBe("fast");
    expect(billableParams("upscale", { task_id: "x", index: 1 }).speed).toBe("relax");
  });

  it("a speed flag that contradicts the field, or two speeds, is refused naming the prompt", () => {
    expect(
      refused(() => billableParams("imagine", { prompt: "a --turbo", speed: "relax" }), "prompt"),
    ).toMatch(/contradicts/);
    refused(() => billableParams("imagine", { prompt: "a --fast --turbo" }), "prompt");
    refused(() => billableParams("video", { prompt: "a --turbo", image_urls: ["x"] }), "prompt");
  });

  it("jobs: repeat field, --repeat N / --r N, permutations multiply; capped at 40", () => {
    expect(billableParams("imagine", { prompt: "a", repeat: 4 }).jobs).toBe(4);
    expect(billableParams("imagine", { prompt: "a --repeat 3" }).jobs).toBe(3);
    expect(billableParams("imagine", { prompt: "a --r 3" }).jobs).toBe(3);
    expect(billableParams("imagine", { prompt: "a --r 3", repeat: 3 }).jobs).toBe(3);
    expect(billableParams("imagine", { prompt: "a {red, green} fox {cat, dog, owl}" }).jobs).toBe(6);
    expect(billableParams("imagine", { prompt: "a {red, green} fox --r 2" }).jobs).toBe(4);
    expect(billableParams("imagine", { prompt: "a fox\\, {a\\, b}" }).jobs).toBe(1);
    refused(() => billableParams("imagine", { prompt: "a --r 3", repeat: 2 }), "prompt");
    refused(() => billableParams("imagine", { prompt: "a --r 41" }), "prompt");
    refused(() => billableParams("imagine", { prompt: "a --r x" }), "prompt");
    refused(() => billableParams("imagine", { prompt: "a {1,2,3,4,5,6,7} {1,2,3,4,5,6,7}" }), "prompt");
    expect(billableParams("imagine", { prompt: "a", repeat: MAX_JOBS }).jobs).toBe(MAX_JOBS);
  });

  it("actions that make one job per request refuse repeat and permutations", () => {
    refused(() => billableParams("remix-strong", { task_id: "t", index: 1, prompt: "x --r 4" }), "prompt");
    refused(() => billableParams("modal", { task_id: "t", prompt: "{a, b}" }), "prompt");
    expect(billableParams("modal", { task_id: "t", prompt: "sky --turbo" }).speed).toBe("turbo");
  });

  it("video: --bs in the prompt prices the batch, --hd prices 720p, conflicts refused", () => {
    expect(billableParams("video", { image_urls: ["x"], prompt: "move --bs 4" }).videoBatch).toBe(4);
    expect(billableParams("video", { image_urls: ["x"], batch_size: 2 }).videoBatch).toBe(2);
    expect(billableParams("video", { image_urls: ["x"], prompt: "move --hd" }).videoHd).toBe(true);
    refused(() => billableParams("video", { image_urls: ["x"], prompt: "--bs 4", batch_size: 2 }), "prompt");
    refused(() => billableParams("video", { image_urls: ["x"], prompt: "--bs 3" }), "prompt");
    refused(() => billableParams("imagine", { prompt: "a --bs 4" }), "prompt");
    refused(() => billableParams("imagine", { prompt: "a --video" }), "prompt");
  });

  it("flags smuggled into fields the upstream appends to the prompt are refused naming that field", () => {
    refused(
      () => billableParams("imagine", { prompt: "a", negative_prompt: "dogs --turbo" }),
      "negative_prompt",
    );
    refused(() => billableParams("imagine", { prompt: "a", style: "raw --r 40" }), "style");
    refused(() => billableParams("imagine", { prompt: "a", sref: "https://x.test/a.png --r 4" }), "sref");
    expect(billableParams("imagine", { prompt: "a", negative_prompt: "dogs, cats" }).jobs).toBe(1);
  });

  it("permutationCount counts top-level groups and nested ones", () => {
    expect(permutationCount("plain")).toBe(1);
    expect(permutationCount("{a,b}")).toBe(2);
    expect(permutationCount("{a,{b,c}}")).toBe(3);
    expect(permutationCount("{a} {b}")).toBe(1);
  });
});
