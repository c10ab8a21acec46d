import { describe, expect, it } from "vitest";
import { expectError, imagine, newKey, simFetch, submit, submitOk, task, upscaled } from "./sim-helpers";

const IMG = "https://example.com/a.png";
const IMG2 = "https://example.com/b.png";
const DATA_URI =
  "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

function expectGrid(view: any, action: string) {
  expect(view.status).toBe("SUCCESS");
  expect(view.action).toBe(action);
  expect(view.progress).toBe("100%");
  expect(view.grid_image_url).toMatch(/^http:\/\/sim\.test\/cdn\/task_\w+\/grid\.png$/);
  expect(view.image_urls).toHaveLength(4);
  expect(view.buttons.map((b: any) => b.label)).toEqual([
    "U1",
    "U2",
    "U3",
    "U4",
    "🔄",
    "V1",
    "V2",
    "V3",
    "V4",
  ]);
  expect(view.fail_reason).toBeNull();
  expect(view.completed).toBeTypeOf("number");
}

describe("accepted submits", () => {
  it("imagine via the bare path and via /imagine, with metadata echoed and list prices", async () => {
    const key = newKey();
    const bare = await simFetch("POST", "/v1/midjourney/generations", {
      key,
      body: { prompt: "a cat", metadata: { order: 42 } },
    });
    expect(bare.status).toBe(200);
    expect(bare.body).toEqual({ code: 200, data: [{ status: "submitted", task_id: expect.any(String) }] });
    const view = await task(key, bare.body.data[0].task_id);
    expectGrid(view, "IMAGINE");
    expect(view).toMatchObject({
      id: bare.body.data[0].task_id,
      prompt: "a cat",
      cost: 0.04504,
      metadata: { order: 42 },
    });
    expect(view.created).toBeLessThanOrEqual(view.completed);
    expect(view.buttons[0].customId).toMatch(/^MJ::JOB::upsample::1::[0-9a-f-]{36}$/);
    expect(view.buttons[4].customId).toMatch(/^MJ::JOB::reroll::0::[0-9a-f-]{36}::SOLO$/);
    expect(view.buttons[5].customId).toMatch(/^MJ::JOB::variation::1::[0-9a-f-]{36}$/);

    const fast = await task(key, await submitOk(key, "imagine", { prompt: "a cat", speed: "fast" }));
    expect(fast.cost).toBe(0.05504);
    const turbo = await task(key, await submitOk(key, "imagine", { prompt: "a cat", speed: "turbo" }));
    expect(turbo.cost).toBe(0.1);
  });

  it("imagine accepts every documented option, image inputs and data URIs", async () => {
    const key = newKey();
    const id = await submitOk(key, "imagine", {
      prompt: "a fox",
      image_urls: [IMG, DATA_URI],
      size: "16:9",
      version: "7",
      niji: false,
      stylize: 1000,
      chaos: 100,
      weird: 3000,
      quality: 0.5,
      style: "raw",
      seed: 4294967295,
      negative_prompt: "dogs",
      iw: 3,
      cw: 100,
      sw: 1000,
      cref: IMG,
      sref: IMG,
      dref: IMG,
      tile: true,
      raw: true,
      draft: false,
      hd: true,
      stop: 10,
      unknown_extra_field: "tolerated",
    });
    expectGrid(await task(key, id), "IMAGINE");
  });

  it("imagine with repeat creates that many tasks", async () => {
    const key = newKey();
    const response = await submit(key, "imagine", { prompt: "a kite", repeat: 3 });
    expect(response.status).toBe(200);
    expect(response.body.data).toHaveLength(3);
    const ids = new Set(response.body.data.map((d: any) => d.task_id));
    expect(ids.size).toBe(3);
  });

  it("edits, blend and describe", async () => {
    const key = newKey();
    const edits = await task(
      key,
      await submitOk(key, "edits", { prompt: "make it blue", image_urls: [IMG] }),
    );
    expectGrid(edits, "EDITS");
    expect(edits.cost).toBe(0.05504);

    const blend = await task(
      key,
      await submitOk(key, "blend", { image_urls: [IMG, IMG2], dimensions: "PORTRAIT", speed: "turbo" }),
    );
    expectGrid(blend, "BLEND");
    expect(blend.cost).toBe(0.1);

    const described = await task(key, await submitOk(key, "describe", { image_urls: [IMG] }));
    expect(described).toMatchObject({ status: "SUCCESS", action: "DESCRIBE", image_urls: [], buttons: [] });
    expect(described.prompt.split("\n\n")).toHaveLength(4);
    expect(described.description).toBe(described.prompt);
    expect(described.prompt).toContain("1️⃣");
  });

  it("upscale gives one image and the upscaled-image buttons", async () => {
    const key = newKey();
    const { upscale } = await upscaled(key, 2);
    const view = await task(key, upscale);
    expect(view).toMatchObject({ status: "SUCCESS", action: "UPSCALE", cost: 0.05504 });
    expect(view.image_urls).toEqual([`http://sim.test/cdn/${upscale}/0.png`]);
    expect(view.grid_image_url).toBeUndefined();
    expect(view.buttons.map((b: any) => b.label)).toEqual([
      "Vary (Subtle)",
      "Vary (Strong)",
      "Vary (Region)",
      "Zoom Out 2x",
      "Zoom Out 1.5x",
      "⬅️",
      "➡️",
      "⬆️",
      "⬇️",
    ]);
    const hash = view.buttons[0].customId.split("::")[4];
    expect(view.buttons.map((b: any) => b.customId)).toEqual([
      `MJ::JOB::low_variation::1::${hash}::SOLO`,
      `MJ::JOB::high_variation::1::${hash}::SOLO`,
      `MJ::Inpaint::1::${hash}::SOLO`,
      `MJ::Outpaint::50::1::${hash}::SOLO`,
      `MJ::Outpaint::75::1::${hash}::SOLO`,
      `MJ::JOB::pan_left::1::${hash}::SOLO`,
      `MJ::JOB::pan_right::1::${hash}::SOLO`,
      `MJ::JOB::pan_up::1::${hash}::SOLO`,
      `MJ::JOB::pan_down::1::${hash}::SOLO`,
    ]);
  });

  it("variation family, reroll and remix on a grid", async () => {
    const key = newKey();
    const grid = await imagine(key);
    const cases: [string, object, string][] = [
      ["variation", { task_id: grid, index: 1 }, "VARIATION"],
      ["high-variation", { task_id: grid, index: 2 }, "HIGH_VARIATION"],
      ["low-variation", { task_id: grid, index: 3, speed: "turbo" }, "LOW_VARIATION"],
      ["reroll", { task_id: grid }, "REROLL"],
      ["remix-strong", { task_id: grid, index: 4, prompt: "now in winter" }, "REMIX_STRONG"],
      ["remix-subtle", { task_id: grid, index: 1 }, "REMIX_SUBTLE"],
    ];
    for (const [action, body, label] of cases) {
      const view = await task(key, await submitOk(key, action, body));
      expectGrid(view, label);
    }
    const remix = await task(
      key,
      await submitOk(key, "remix-strong", { task_id: grid, index: 4, prompt: "snow" }),
    );
    expect(remix.prompt).toBe("snow");
    const variation = await task(key, await submitOk(key, "variation", { task_id: grid, index: 1 }));
    expect(variation.prompt).toBe("a lighthouse at dusk");
  });

  it("zoom, pan and vary on an upscaled image", async () => {
    const key = newKey();
    const { upscale } = await upscaled(key);
    for (const [action, body, label] of [
      ["zoom", { task_id: upscale, zoom_ratio: 1.5 }, "ZOOM"],
      ["zoom", { task_id: upscale, zoom_ratio: 2 }, "ZOOM"],
      ["zoom", { task_id: upscale }, "ZOOM"],
      ["pan", { task_id: upscale, direction: "left" }, "PAN"],
      ["high-variation", { task_id: upscale, index: 1 }, "HIGH_VARIATION"],
      ["low-variation", { task_id: upscale, index: 1 }, "LOW_VARIATION"],
    ] as const) {
      expectGrid(await task(key, await submitOk(key, action, body)), label);
    }
  });

  it("video from an image URL and from an imagine task, with batch_size and resolution pricing", async () => {
    const key = newKey();
    const fromUrl = await task(key, await submitOk(key, "video", { image_urls: [IMG], prompt: "slow pan" }));
    expect(fromUrl).toMatchObject({ status: "SUCCESS", action: "VIDEO", cost: 0.2, image_urls: [] });
    expect(fromUrl.video_urls).toEqual([`http://sim.test/cdn/${fromUrl.id}/video_0.mp4`]);
    expect(fromUrl.video_url).toBe(fromUrl.video_urls[0]);

    const grid = await imagine(key);
    const cases: [object, number, number][] = [
      [{ batch_size: 2, video_type: "vid_1.1_i2v_720" }, 2, 0.8],
      [{ batch_size: 4 }, 4, 0.8],
      [{ batch_size: 3 }, 1, 0.2],
      [{ batch_size: "4" }, 1, 0.2],
      [{ video_type: "vid_1.1_i2v_start_end_720", end_url: IMG2 }, 1, 0.4],
      [{ end_url: IMG2, motion: "high", animate_mode: "manual" }, 1, 0.2],
    ];
    for (const [extra, videos, cost] of cases) {
      const view = await task(key, await submitOk(key, "video", { task_id: grid, index: 3, ...extra }));
      expect(view.video_urls, JSON.stringify(extra)).toHaveLength(videos);
      expect(view.cost, JSON.stringify(extra)).toBe(cost);
    }
  });

  it("inpaint answers status modal and waits in MODAL", async () => {
    const key = newKey();
    const { upscale } = await upscaled(key);
    const response = await submit(key, "inpaint", { task_id: upscale });
    expect(response.status).toBe(200);
    expect(response.body.data[0].status).toBe("modal");
    const view = await task(key, response.body.data[0].task_id);
    expect(view).toMatchObject({
      status: "MODAL",
      action: "INPAINT",
      progress: "15%",
      cost: 0,
      completed: null,
    });
  });
});

describe("validation", () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ["imagine", {}, "prompt is required"],
    ["imagine", { prompt: "   " }, "prompt: must not be empty"],
    ["imagine", { prompt: 42 }, "prompt: must be a string"],
    ["imagine", { prompt: "x", image_urls: [IMG, IMG, IMG, IMG, IMG] }, "image_urls: must hold 0 to 4"],
    [
      "imagine",
      { prompt: "x", image_urls: ["ftp://example.com/a.png"] },
      "image_urls.0: must be an http(s) URL",
    ],
    ["imagine", { prompt: "x", image_urls: ["data:image/png,abc"] }, "image_urls.0"],
    ["imagine", { prompt: "x", image_urls: IMG }, "image_urls: must be an array"],
    ["imagine", { prompt: "x", stylize: 1001 }, "stylize: must be an integer from 0 to 1000"],
    ["imagine", { prompt: "x", chaos: 101 }, "chaos"],
    ["imagine", { prompt: "x", weird: 3001 }, "weird"],
    ["imagine", { prompt: "x", quality: 3 }, "quality: must be one of 0.25, 0.5, 1, 2"],
    ["imagine", { prompt: "x", iw: 3.5 }, "iw: must be a number from 0 to 3"],
    ["imagine", { prompt: "x", cw: 101 }, "cw"],
    ["imagine", { prompt: "x", sw: 1001 }, "sw"],
    ["imagine", { prompt: "x", stop: 9 }, "stop: must be an integer from 10 to 100"],
    ["imagine", { prompt: "x", repeat: 1 }, "repeat: must be an integer from 2 to 40"],
    ["imagine", { prompt: "x", seed: -1 }, "seed"],
    ["imagine", { prompt: "x", stylize: 1.5 }, "stylize"],
    ["imagine", { prompt: "x", version: "9" }, "version"],
    ["imagine", { prompt: "x", size: "wide" }, "size"],
    ["imagine", { prompt: "x", speed: "ludicrous" }, "speed: must be relax, fast or turbo"],
    ["imagine", { prompt: "x", metadata: [1, 2] }, "metadata: must be a JSON object"],
    ["imagine", { prompt: "x", tile: "yes" }, "tile: must be a boolean"],
    ["edits", { prompt: "x" }, "image_urls is required"],
    ["edits", { image_urls: [IMG] }, "prompt is required"],
    ["blend", { image_urls: [IMG] }, "image_urls: must hold 2 to 4"],
    ["blend", { image_urls: [IMG, IMG, IMG, IMG, IMG] }, "image_urls: must hold 2 to 4"],
    ["blend", { image_urls: [IMG, IMG2], dimensions: "ROUND" }, "dimensions"],
    ["describe", { image_urls: [] }, "image_urls: must hold exactly 1"],
    ["describe", { image_urls: [IMG, IMG2] }, "image_urls: must hold exactly 1"],
    ["describe", {}, "image_urls is required"],
    ["upscale", { index: 1 }, "task_id is required"],
    ["upscale", { task_id: "task_x" }, "index is required"],
    ["upscale", { task_id: "task_x", index: 5 }, "index: must be an integer from 1 to 4"],
    ["upscale", { task_id: "task_x", index: 0 }, "index"],
    ["upscale", { task_id: "task_x", index: 1, custom_id: "MJ::JOB::upsample::1::x" }, "mutually exclusive"],
    ["variation", { task_id: "task_x" }, "index is required"],
    ["high-variation", { index: 1 }, "task_id is required"],
    ["low-variation", { task_id: "task_x", index: 9 }, "index"],
    ["reroll", {}, "task_id is required"],
    ["zoom", {}, "task_id is required"],
    ["zoom", { task_id: "task_x", zoom_ratio: 0.5 }, "zoom_ratio"],
    ["zoom", { task_id: "task_x", zoom_ratio: "2" }, "zoom_ratio"],
    ["pan", { task_id: "task_x" }, "direction is required"],
    ["pan", { task_id: "task_x", direction: "diagonal" }, "direction: must be left, right, up or down"],
    ["inpaint", {}, "task_id is required"],
    ["modal", { prompt: "x" }, "task_id is required"],
    ["modal", { task_id: "task_x", mask_url: "not a url" }, "mask_url"],
    ["video", {}, "image_urls or task_id is required"],
    ["video", { image_urls: [IMG], task_id: "task_x" }, "not both"],
    ["video", { image_urls: [IMG], index: 1 }, "index requires task_id"],
    ["video", { task_id: "task_x", index: 4 }, "index: must be an integer from 0 to 3"],
    ["video", { image_urls: [IMG, IMG2] }, "image_urls: must hold exactly 1"],
    ["video", { image_urls: [IMG], video_type: "vid_9" }, "video_type"],
    ["video", { image_urls: [IMG], motion: "wild" }, "motion"],
    ["remix-strong", { task_id: "task_x" }, "index is required"],
    ["remix-subtle", { index: 1 }, "task_id is required"],
  ];

  it.each(cases)("%s %j -> 400 %s", async (action, body, message) => {
    await expectError(await submit(newKey(), action, body), 400, message, 4);
  });

  it("rejects non-object JSON bodies and unknown actions", async () => {
    const key = newKey();
    const broken = await simFetch("POST", "/v1/midjourney/generations/imagine", { key, rawBody: "{nope" });
    await expectError(broken, 400, "request body must be a JSON object", 4);
    const array = await simFetch("POST", "/v1/midjourney/generations/imagine", { key, rawBody: "[1]" });
    await expectError(array, 400, "request body must be a JSON object", 4);
    await expectError(
      await submit(key, "paint-by-numbers", { prompt: "x" }),
      400,
      'unknown action "paint-by-numbers"',
      4,
    );
  });
});
