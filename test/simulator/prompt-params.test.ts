/**
 * The simulator does what the upstream does with parameters inside the prompt: the speed
 * flags set what it bills and --repeat N / --r N make N jobs, like the body's fields.
 */
import { describe, expect, it } from "vitest";
import { control, newKey, query, submit } from "./sim-helpers";

describe("simulator: parameters inside the prompt", () => {
  it("--turbo bills turbo; --relax and --fast too; the field wins when both are given", async () => {
    const key = newKey();
    for (const [prompt, speed, cost] of [
      ["a fox --turbo", undefined, 0.1],
      ["a fox \u2014fast", undefined, 0.05504],
      ["a fox", undefined, 0.04504],
      ["a fox --turbo", "relax", 0.04504],
    ] as const) {
      const res = await submit(key, "imagine", { prompt, ...(speed ? { speed } : {}) });
      expect(res.status, res.text).toBe(200);
      const task = await query(key, res.body.data[0].task_id);
      expect(task.body.cost, prompt).toBe(cost);
    }
  });

  it("--repeat N and --r N make N tasks, like repeat", async () => {
    const key = newKey();
    for (const prompt of ["many --repeat 3", "many --r 3"]) {
      const res = await submit(key, "imagine", { prompt });
      expect(res.body.data).toHaveLength(3);
    }
    const listed = await control("GET", `/tasks?key=${encodeURIComponent(key)}`);
    expect(listed.body).toHaveLength(6);
  });

  it("accepts four data URIs of 12 MiB (kept out of its task records)", async () => {
    const key = newKey();
    const image = `data:image/png;base64,${"A".repeat(16 * 1024 * 1024)}`;
    const res = await submit(key, "edits", { prompt: "big", image_urls: [image, image, image, image] });
    expect(res.status, res.text.slice(0, 200)).toBe(200);
    const tooBig = `data:image/png;base64,${"A".repeat(17 * 1024 * 1024)}`;
    expect((await submit(key, "edits", { prompt: "big", image_urls: [tooBig] })).status).toBe(400);
  });
});
