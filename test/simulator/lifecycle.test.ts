import { describe, expect, it } from "vitest";
import {
  control,
  expectError,
  imagine,
  newKey,
  simFetch,
  submit,
  submitOk,
  task,
  upscaled,
} from "./sim-helpers";

const MINUTE = 60_000;

/** Run `body` with this key on a real-time clock (scale 1), restoring the default after. */
async function inRealTime(key: string, body: () => Promise<void>) {
  await control("POST", "/config", { time_scale: 1, key });
  try {
    await body();
  } finally {
    await control("POST", "/config", { time_scale: null, key });
  }
}

const advance = (key: string, ms: number) => control("POST", "/clock", { advance_ms: ms, key });

function unified(key: string, taskId: string) {
  return simFetch("GET", `/v1/tasks/${taskId}`, { key });
}

describe("status derived from time", () => {
  it("walks NOT_START -> SUBMITTED -> IN_PROGRESS -> SUCCESS and then never changes", async () => {
    const key = newKey();
    await inRealTime(key, async () => {
      const id = await imagine(key); // relax: 100 simulated seconds
      const start = await task(key, id);
      expect(start).toMatchObject({
        status: "NOT_START",
        progress: "0%",
        completed: null,
        image_urls: [],
        buttons: [],
      });
      expect(start.grid_image_url).toBeNull();
      expect((await unified(key, id)).body.data).toMatchObject({
        status: "pending",
        progress: 0,
        result: null,
      });

      await advance(key, 20_000);
      const submitted = await task(key, id);
      expect(submitted.status).toBe("SUBMITTED");
      const percent = Number.parseInt(submitted.progress, 10);
      expect(percent).toBeGreaterThanOrEqual(5);
      expect(percent).toBeLessThanOrEqual(30);

      await advance(key, 40_000);
      const running = await task(key, id);
      expect(running.status).toBe("IN_PROGRESS");
      expect(Number.parseInt(running.progress, 10)).toBeGreaterThan(30);
      expect((await unified(key, id)).body.data.status).toBe("processing");

      await advance(key, 39_000);
      const almost = await task(key, id);
      expect(almost.status).toBe("IN_PROGRESS");
      expect(Number.parseInt(almost.progress, 10)).toBeLessThanOrEqual(99);

      await advance(key, 1_000);
      const done = await task(key, id);
      expect(done).toMatchObject({ status: "SUCCESS", progress: "100%" });
      expect(done.completed - done.created).toBeGreaterThanOrEqual(99);

      await advance(key, 60 * MINUTE);
      expect(await task(key, id)).toEqual(done);
    });
  });

  it("uses the per-speed and per-action durations", async () => {
    const key = newKey();
    await inRealTime(key, async () => {
      const relax = await imagine(key, "slow");
      const turbo = await imagine(key, "quick", { speed: "turbo" });
      const grid = await imagine(key, "grid", { speed: "fast" }); // 45 s
      await advance(key, 45_000);
      const upscale = await submitOk(key, "upscale", { task_id: grid, index: 1 });
      const describeTask = await submitOk(key, "describe", { image_urls: ["https://example.com/a.png"] });
      await advance(key, 2_000);
      expect((await task(key, upscale)).status).toBe("SUCCESS"); // milliseconds
      expect((await task(key, describeTask)).status).toBe("SUCCESS"); // 2 s
      expect((await task(key, turbo)).status).toBe("SUCCESS"); // 20 s, 47 s ago
      expect((await task(key, relax)).status).toBe("IN_PROGRESS"); // 100 s
    });
  });

  it("the control API reports config scoped to a key", async () => {
    const key = newKey();
    const before = await control("GET", `/config?key=${key}`);
    expect(before.body).toEqual({ time_scale: 0, clock_offset_ms: 0, video_bytes: 256 * 1024, scope: key });
    await control("POST", "/config", { time_scale: 2.5, key });
    expect((await control("GET", `/config?key=${key}`)).body.time_scale).toBe(2.5);
    await control("POST", "/config", { time_scale: null, key });
    expect((await control("GET", `/config?key=${key}`)).body.time_scale).toBe(0);
    expect((await control("GET", "/config")).body.time_scale).toBe(0);
    expect((await control("POST", "/config", { time_scale: -1, key })).status).toBe(400);
    expect((await control("POST", "/clock", { advance_ms: -5, key })).status).toBe(400);
  });
});

describe("inpaint and modal", () => {
  it("MODAL -> /modal -> same task id SUBMITTED -> SUCCESS grid, charged once", async () => {
    const key = newKey();
    const { upscale } = await upscaled(key);
    const inpaint = await submitOk(key, "inpaint", { task_id: upscale, metadata: { step: "inpaint" } });
    expect(await task(key, inpaint)).toMatchObject({ status: "MODAL", progress: "15%", cost: 0 });
    expect((await unified(key, inpaint)).body.data.status).toBe("pending");

    const modal = await submit(key, "modal", {
      task_id: inpaint,
      prompt: "add a red hat",
      mask_url: "https://example.com/mask.png",
    });
    expect(modal.body).toEqual({ code: 200, data: [{ status: "submitted", task_id: inpaint }] });
    const done = await task(key, inpaint);
    expect(done).toMatchObject({
      id: inpaint,
      status: "SUCCESS",
      action: "INPAINT",
      prompt: "add a red hat",
      cost: 0.05504,
      metadata: { step: "inpaint" },
    });
    expect(done.image_urls).toHaveLength(4);
    expect(done.grid_image_url).toContain(inpaint);
  });

  it("the modal step takes 75 simulated seconds", async () => {
    const key = newKey();
    const { upscale } = await upscaled(key);
    const inpaint = await submitOk(key, "inpaint", { task_id: upscale });
    await inRealTime(key, async () => {
      await submitOk(key, "modal", { task_id: inpaint, speed: "turbo" });
      expect(["NOT_START", "SUBMITTED"]).toContain((await task(key, inpaint)).status);
      await advance(key, 74_000);
      expect((await task(key, inpaint)).status).toBe("IN_PROGRESS");
      await advance(key, 1_000);
      expect(await task(key, inpaint)).toMatchObject({ status: "SUCCESS", cost: 0.1 });
    });
  });

  it("is cancelled 30 simulated minutes after entering MODAL without /modal", async () => {
    const key = newKey();
    const { upscale } = await upscaled(key);
    const inpaint = await submitOk(key, "inpaint", { task_id: upscale });
    await advance(key, 29 * MINUTE);
    expect((await task(key, inpaint)).status).toBe("MODAL");
    await advance(key, MINUTE);
    const cancelled = await task(key, inpaint);
    expect(cancelled.status).toBe("CANCEL");
    expect(cancelled.fail_reason).toContain("MODAL timed out");
    expect(cancelled.completed).toBeTypeOf("number");
    const view = (await unified(key, inpaint)).body.data;
    expect(view).toMatchObject({ status: "cancelled", result: null });
    expect(view.error.message).toContain("MODAL timed out");
    await expectError(await submit(key, "modal", { task_id: inpaint }), 400, "is not in MODAL state", 4);
  });
});

describe("failures", () => {
  it("a [sim:fail] prompt ends in FAILURE with a reason", async () => {
    const key = newKey();
    const id = await imagine(key, "a cat [sim:fail]");
    const view = await task(key, id);
    expect(view).toMatchObject({ status: "FAILURE", progress: "100%", image_urls: [], buttons: [] });
    expect(view.fail_reason).toContain("[sim:fail]");
    const body = (await unified(key, id)).body.data;
    expect(body).toMatchObject({ status: "failed", progress: 100, result: null });
    expect(body.error.message).toContain("[sim:fail]");
  });

  it("a [sim:fail] modal prompt fails the inpaint task", async () => {
    const key = newKey();
    const { upscale } = await upscaled(key);
    const inpaint = await submitOk(key, "inpaint", { task_id: upscale });
    await submitOk(key, "modal", { task_id: inpaint, prompt: "[sim:fail] hat" });
    expect((await task(key, inpaint)).status).toBe("FAILURE");
  });
});

describe("GET /v1/tasks/{id}", () => {
  it("answers the unified shape for images, videos and describe", async () => {
    const key = newKey();
    const grid = await imagine(key);
    const response = await unified(key, grid);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      code: 200,
      data: {
        id: grid,
        action: "IMAGINE",
        status: "completed",
        progress: 100,
        result: { images: [{ url: [0, 1, 2, 3].map((i) => `http://sim.test/cdn/${grid}/${i}.png`) }] },
        error: null,
      },
    });
    const video = await submitOk(key, "video", { task_id: grid, batch_size: 2 });
    expect((await unified(key, video)).body.data.result.videos[0].url).toHaveLength(2);
    const describeTask = await submitOk(key, "describe", { image_urls: ["https://example.com/a.png"] });
    expect((await unified(key, describeTask)).body.data.result.description).toContain("2️⃣");
  });

  it("applies the same auth and ownership rules", async () => {
    const key = newKey();
    const grid = await imagine(key);
    expect((await unified(newKey(), grid)).status).toBe(403);
    expect((await simFetch("GET", `/v1/tasks/${grid}`, { key: null })).status).toBe(401);
    await expectError(await unified(key, "task_01KV52C0TEJSYZMCG0NCS4YWKK"), 404, "not found", 3);
  });
});

describe("retention and reset", () => {
  it("tasks older than 3 days answer 404", async () => {
    const key = newKey();
    const grid = await imagine(key);
    await advance(key, 3 * 24 * 60 * MINUTE - MINUTE);
    expect((await task(key, grid)).status).toBe("SUCCESS");
    await advance(key, 2 * MINUTE);
    await expectError(
      await simFetch("GET", `/v1/midjourney/${grid}`, { key }),
      404,
      `task ${grid} not found`,
      3,
    );
  });

  it("POST /_sim/reset?key= forgets one key's tasks and stats only", async () => {
    const key = newKey();
    const bystander = newKey();
    const mine = await imagine(key);
    const theirs = await imagine(bystander);
    const reset = await control("POST", `/reset?key=${encodeURIComponent(key)}`);
    expect(reset.status).toBe(200);
    expect((await simFetch("GET", `/v1/midjourney/${mine}`, { key })).status).toBe(404);
    expect((await task(bystander, theirs)).status).toBe("SUCCESS");
    expect((await control("GET", `/stats?key=${key}`)).body).toEqual({
      submits: 0,
      submits_accepted: 0,
      submits_refused: 0,
      tasks_created: 0,
      queries: 1,
      queries_by_task: { [mine]: 1 },
      open_tasks: 0,
      peak_open_tasks: 0,
    });
  });

  it("GET /_sim/tasks?key= lists a key's tasks", async () => {
    const key = newKey();
    const grid = await imagine(key, "listed");
    const upscale = await submitOk(key, "upscale", { task_id: grid, index: 2 });
    const listed = await control("GET", `/tasks?key=${key}`);
    expect(listed.body).toEqual([
      {
        id: grid,
        action: "imagine",
        status: "SUCCESS",
        prompt: "listed",
        parent_id: null,
        speed: "relax",
        cost: 0.04504,
        image_urls: [],
      },
      {
        id: upscale,
        action: "upscale",
        status: "SUCCESS",
        prompt: "listed",
        parent_id: grid,
        speed: "relax",
        cost: 0.05504,
        image_urls: [],
      },
    ]);
    expect((await control("GET", "/tasks")).status).toBe(400);
  });
});
