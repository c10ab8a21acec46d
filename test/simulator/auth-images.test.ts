import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { expectError, imagine, newKey, simFetch, submitOk, task, upscaled } from "./sim-helpers";

describe("auth", () => {
  it("401 without a key or with a key that is not sk-sim-", async () => {
    await expectError(
      await simFetch("POST", "/v1/midjourney/generations", { key: null, body: { prompt: "x" } }),
      401,
      "missing Authorization",
    );
    await expectError(
      await simFetch("POST", "/v1/midjourney/generations", { key: "sk-live-123", body: { prompt: "x" } }),
      401,
      "invalid API key",
    );
    await expectError(
      await simFetch("GET", "/v1/midjourney/task_x", { key: "sk-sim-" }),
      401,
      "invalid API key",
    );
  });

  it("403 for another key's task, 404 code 3 for an unknown one", async () => {
    const key = newKey();
    const id = await imagine(key);
    const foreign = await simFetch("GET", `/v1/midjourney/${id}`, { key: newKey() });
    expect(foreign.status).toBe(403);
    expect(foreign.body.error.type).toBe("permission_error");
    await expectError(
      await simFetch("GET", "/v1/midjourney/task_01KV52C0TEJSYZMCG0NCS4YWKK", { key }),
      404,
      "task task_01KV52C0TEJSYZMCG0NCS4YWKK not found",
      3,
    );
  });

  it("unknown routes answer a JSON 404", async () => {
    const response = await simFetch("GET", "/v2/whatever");
    expect(response.status).toBe(404);
    expect(response.body.error.message).toContain("no route");
  });
});

describe("images", () => {
  it("serves the grid and its cells as SVG without auth", async () => {
    const key = newKey();
    const id = await imagine(key, "a red fox");
    // Results report PNG URLs (files.test.ts); the SVG drawings answer at the same names.
    const grid = await simFetch("GET", `/cdn/${id}/grid.svg`);
    expect(grid.status).toBe(200);
    expect(grid.headers.get("content-type")).toContain("image/svg+xml");
    expect(grid.text).toMatch(/^<svg /);
    const cells = await Promise.all([0, 1, 2, 3].map((n) => simFetch("GET", `/cdn/${id}/${n}.svg`)));
    for (const cell of cells) {
      expect(cell.status).toBe(200);
      expect(cell.text).toContain("a red fox");
    }
    expect(new Set(cells.map((c) => c.text)).size).toBe(4);
  });

  it("is deterministic per prompt and differs between prompts", async () => {
    const key = newKey();
    const a1 = await imagine(key, "same prompt");
    const a2 = await imagine(key, "same prompt");
    const b = await imagine(key, "other prompt");
    const svg = async (id: string) => (await simFetch("GET", `/cdn/${id}/0.svg`)).text;
    expect(await svg(a1)).toBe(await svg(a2));
    expect(await svg(a1)).not.toBe(await svg(b));
  });

  it("serves an upscale's single image and 404s files a task does not have", async () => {
    const key = newKey();
    const { grid, upscale } = await upscaled(key, 4);
    expect((await simFetch("GET", `/cdn/${upscale}/0.svg`)).text).toBe(
      (await simFetch("GET", `/cdn/${grid}/3.svg`)).text,
    );
    expect((await simFetch("GET", `/cdn/${upscale}/1.svg`)).status).toBe(404);
    expect((await simFetch("GET", `/cdn/${upscale}/grid.svg`)).status).toBe(404);
    expect((await simFetch("GET", `/cdn/${grid}/4.svg`)).status).toBe(404);
    expect((await simFetch("GET", "/cdn/task_01KV52C0TEJSYZMCG0NCS4YWKK/grid.svg")).status).toBe(404);
  });

  it("serves batch_size videos", async () => {
    const key = newKey();
    const id = await submitOk(key, "video", { image_urls: ["https://example.com/a.png"], batch_size: 4 });
    const view = await task(key, id);
    expect(view.video_urls).toHaveLength(4);
    for (const url of view.video_urls) {
      const response = await env.SIMULATOR.fetch(url);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe("video/mp4");
      const bytes = new Uint8Array(await response.arrayBuffer());
      expect(new TextDecoder().decode(bytes.slice(4, 8))).toBe("ftyp");
    }
    expect((await simFetch("GET", `/cdn/${id}/video_4.mp4`)).status).toBe(404);
  });
});
