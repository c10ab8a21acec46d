import { describe, expect, it } from "vitest";
import {
  control,
  customIdOf,
  expectError,
  imagine,
  newKey,
  simFetch,
  submit,
  submitOk,
  task,
  upscaled,
} from "./sim-helpers";

const MISSING = "task_01KV52C0TEJSYZMCG0NCS4YWKK";

describe("parent existence, ownership and state", () => {
  it("unknown parent -> 404 code 3", async () => {
    await expectError(
      await submit(newKey(), "upscale", { task_id: MISSING, index: 1 }),
      404,
      `task ${MISSING} not found`,
      3,
    );
  });

  it("another key's parent -> 403", async () => {
    const owner = newKey();
    const grid = await imagine(owner);
    const response = await submit(newKey(), "upscale", { task_id: grid, index: 1 });
    expect(response.status).toBe(403);
    expect(response.body.error.message).toContain(grid);
  });

  it("a parent that failed is not in SUCCESS state", async () => {
    const key = newKey();
    const failed = await imagine(key, "a broken dream [sim:fail]");
    await expectError(
      await submit(key, "upscale", { task_id: failed, index: 1 }),
      400,
      `task ${failed} is not in SUCCESS state`,
      4,
    );
  });

  it("a parent still running is not in SUCCESS state", async () => {
    const key = newKey();
    // Only this key runs in real time: other test files keep the instant clock.
    await control("POST", "/config", { time_scale: 1, key });
    try {
      const running = await imagine(key);
      expect((await task(key, running)).status).not.toBe("SUCCESS");
      await expectError(
        await submit(key, "variation", { task_id: running, index: 1 }),
        400,
        "is not in SUCCESS state",
        4,
      );
    } finally {
      await control("POST", "/config", { time_scale: null, key });
    }
  });
});

describe("parent shape rules", () => {
  it("zoom, pan and inpaint need an upscaled image", async () => {
    const key = newKey();
    const grid = await imagine(key);
    for (const [action, body] of [
      ["zoom", { task_id: grid }],
      ["pan", { task_id: grid, direction: "up" }],
      ["inpaint", { task_id: grid }],
    ] as const) {
      await expectError(await submit(key, action, body), 400, "This action requires an upscaled task", 4);
    }
  });

  it("upscale, variation and remix need a grid", async () => {
    const key = newKey();
    const { upscale } = await upscaled(key);
    for (const action of ["upscale", "variation", "remix-strong", "remix-subtle"]) {
      await expectError(await submit(key, action, { task_id: upscale, index: 1 }), 400, "4-image grid", 4);
    }
    const describeTask = await submitOk(key, "describe", { image_urls: ["https://example.com/a.png"] });
    await expectError(
      await submit(key, "upscale", { task_id: describeTask, index: 1 }),
      400,
      "4-image grid",
      4,
    );
  });

  it("reroll needs an imagine or reroll parent", async () => {
    const key = newKey();
    const grid = await imagine(key);
    const reroll = await submitOk(key, "reroll", { task_id: grid });
    const again = await submitOk(key, "reroll", { task_id: reroll });
    expect((await task(key, again)).status).toBe("SUCCESS");
    const variation = await submitOk(key, "variation", { task_id: grid, index: 1 });
    await expectError(
      await submit(key, "reroll", { task_id: variation }),
      400,
      "reroll requires an imagine or reroll task",
      4,
    );
  });

  it("video from task_id needs a SUCCESS imagine", async () => {
    const key = newKey();
    const grid = await imagine(key);
    const variation = await submitOk(key, "variation", { task_id: grid, index: 1 });
    await expectError(await submit(key, "video", { task_id: variation }), 400, "requires an imagine task", 4);
    const failed = await imagine(key, "[sim:fail] no frames");
    await expectError(await submit(key, "video", { task_id: failed }), 400, "is not in SUCCESS state", 4);
  });

  it("remix needs a v8+ parent when a version was given", async () => {
    const key = newKey();
    const old = await imagine(key, "an old style", { version: "6.1" });
    await expectError(await submit(key, "remix-strong", { task_id: old, index: 1 }), 400, "v8+", 4);
    const current = await imagine(key, "a new style", { version: "8.1" });
    expect(
      (await task(key, await submitOk(key, "remix-subtle", { task_id: current, index: 1 }))).status,
    ).toBe("SUCCESS");
  });

  it("modal needs the inpaint task in MODAL", async () => {
    const key = newKey();
    const grid = await imagine(key);
    await expectError(
      await submit(key, "modal", { task_id: grid }),
      400,
      `task ${grid} is not in MODAL state`,
      4,
    );
    await expectError(await submit(key, "modal", { task_id: MISSING }), 404, "not found", 3);
    const { upscale } = await upscaled(key);
    const inpaint = await submitOk(key, "inpaint", { task_id: upscale });
    expect((await submit(newKey(), "modal", { task_id: inpaint })).status).toBe(403);
    await submitOk(key, "modal", { task_id: inpaint, prompt: "a hat" });
    // The task left MODAL: a second /modal is refused.
    await expectError(await submit(key, "modal", { task_id: inpaint }), 400, "is not in MODAL state", 4);
  });
});

describe("custom_id follow-ups", () => {
  it("upscale by custom_id only picks that cell; the picture is the grid cell", async () => {
    const key = newKey();
    const grid = await imagine(key, "three moons");
    const view = await task(key, grid);
    const upscale = await submitOk(key, "upscale", { custom_id: customIdOf(view, "U3") });
    const upView = await task(key, upscale);
    expect(upView.action).toBe("UPSCALE");
    const cell = await simFetch("GET", `/cdn/${grid}/2.svg`);
    const crop = await simFetch("GET", `/cdn/${upscale}/0.svg`);
    expect(crop.text).toBe(cell.text);
    const other = await simFetch("GET", `/cdn/${grid}/0.svg`);
    expect(crop.text).not.toBe(other.text);
  });

  it("variation, reroll, zoom, pan, vary and inpaint by custom_id", async () => {
    const key = newKey();
    const grid = await imagine(key);
    const gridView = await task(key, grid);
    expect(
      (await task(key, await submitOk(key, "variation", { custom_id: customIdOf(gridView, "V2") }))).action,
    ).toBe("VARIATION");
    expect(
      (await task(key, await submitOk(key, "reroll", { custom_id: customIdOf(gridView, "🔄") }))).action,
    ).toBe("REROLL");
    // task_id together with a custom_id of that task is fine too.
    await submitOk(key, "upscale", { task_id: grid, custom_id: customIdOf(gridView, "U1") });

    const upscale = await submitOk(key, "upscale", { task_id: grid, index: 1 });
    const upView = await task(key, upscale);
    for (const [action, label] of [
      ["zoom", "Zoom Out 2x"],
      ["zoom", "Zoom Out 1.5x"],
      ["pan", "⬅️"],
      ["pan", "⬇️"],
      ["high-variation", "Vary (Strong)"],
      ["low-variation", "Vary (Subtle)"],
    ] as const) {
      const view = await task(key, await submitOk(key, action, { custom_id: customIdOf(upView, label) }));
      expect(view.status, label).toBe("SUCCESS");
    }
    const inpaint = await submit(key, "inpaint", { custom_id: customIdOf(upView, "Vary (Region)") });
    expect(inpaint.body.data[0].status).toBe("modal");
  });

  it("rejects unknown, foreign, malformed and mismatched custom_ids", async () => {
    const key = newKey();
    const grid = await imagine(key);
    const view = await task(key, grid);
    const u1 = customIdOf(view, "U1");
    const hash = u1.split("::")[4];

    const unknown = await submit(key, "upscale", {
      custom_id: `MJ::JOB::upsample::1::${crypto.randomUUID()}`,
    });
    await expectError(unknown, 404, "no task found for custom_id", 3);
    expect((await submit(newKey(), "upscale", { custom_id: u1 })).status).toBe(403);
    await expectError(
      await submit(key, "upscale", { custom_id: "hello" }),
      400,
      "not a recognised button customId",
      4,
    );
    await expectError(
      await submit(key, "upscale", { custom_id: `MJ::JOB::upsample::7::${hash}` }),
      400,
      "is not a button of task",
      4,
    );
    const other = await imagine(key);
    await expectError(
      await submit(key, "upscale", { task_id: other, custom_id: u1 }),
      400,
      "is not a button of task",
      4,
    );
    await expectError(
      await submit(key, "upscale", { custom_id: customIdOf(view, "🔄") }),
      400,
      "does not pick an image",
      4,
    );
    const upscale = await submitOk(key, "upscale", { custom_id: u1 });
    const upView = await task(key, upscale);
    await expectError(
      await submit(key, "pan", { custom_id: customIdOf(upView, "Vary (Region)") }),
      400,
      "not a pan button",
      4,
    );
    // A grid button used for an action that needs an upscaled image.
    await expectError(
      await submit(key, "zoom", { custom_id: u1 }),
      400,
      "This action requires an upscaled task",
      4,
    );
  });
});
