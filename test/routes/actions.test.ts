/**
 * Every action's happy path through the gateway: the submit answer is exactly the
 * upstream's, the task id is ours (not the upstream's), the task object and the unified
 * view carry our id, status, progress, outputs, buttons and the tenant's price.
 */
import { describe, expect, it } from "vitest";
import { call, driveToEnd, submit, type TenantWithKey, tenantWithKey } from "../helpers";
import {
  BASE_URL,
  expectSubmitted,
  get,
  getUnified,
  gridParent,
  ledgerOfTask,
  marker,
  PROGRESS,
  simTasks,
  TASK_ID,
  taskRow,
  tenantRow,
  unitPrice,
  upscaledParent,
  upstreamIdOf,
} from "./route-helpers";

/** Tenants pay 1.25× the operator's price, so `cost` must be the tenant's own price. */
const MULTIPLIER = 12_500;
const newTenant = () => tenantWithKey(50_000_000, {}, { price_multiplier_bps: MULTIPLIER });

const GRID_LABELS = ["U1", "U2", "U3", "U4", "🔄", "V1", "V2", "V3", "V4"];
const UPSCALED_LABELS = ["Vary (Subtle)", "Vary (Strong)", "Vary (Region)", "⬅️", "➡️", "⬆️", "⬇️"];

function expectTaskObject(
  view: any,
  expected: { id: string; action: string; status: string; costMicros: number },
) {
  expect(view.id).toBe(expected.id);
  expect(view.status).toBe(expected.status);
  expect(view.action).toBe(expected.action);
  expect(view.progress).toMatch(PROGRESS);
  expect(view.cost).toBe(expected.costMicros / 1_000_000);
  expect(Number.isInteger(view.created)).toBe(true);
  expect(Math.abs(view.created - Date.now() / 1000)).toBeLessThan(120);
  expect(view).not.toHaveProperty("code");
  expect(view).not.toHaveProperty("data");
  if (["SUCCESS", "FAILURE", "CANCEL"].includes(expected.status)) {
    expect(view.progress).toBe("100%");
    expect(Number.isInteger(view.completed)).toBe(true);
    expect(view.completed).toBeGreaterThanOrEqual(view.created);
  } else {
    expect(view.completed).toBeNull();
  }
  if (expected.status === "SUCCESS") expect(view.fail_reason).toBeNull();
  for (const button of view.buttons ?? []) {
    expect(Object.keys(button).sort()).toEqual(["customId", "label"]);
    expect(button.customId).toMatch(/^MJ::/);
  }
}

function expectGrid(view: any) {
  expect(view.grid_image_url).toMatch(/^https?:\/\//);
  expect(view.image_urls).toHaveLength(4);
  for (const url of view.image_urls) expect(url).toMatch(/^https?:\/\//);
  expect(view.buttons.map((b: any) => b.label)).toEqual(GRID_LABELS);
  expect(view.buttons.find((b: any) => b.label === "U1").customId).toMatch(/^MJ::JOB::upsample::1::/);
}

function expectUpscaled(view: any) {
  expect(view.image_urls).toHaveLength(1);
  const labels = view.buttons.map((b: any) => b.label);
  for (const label of UPSCALED_LABELS) expect(labels).toContain(label);
  expect(labels.some((l: string) => l.startsWith("Zoom Out"))).toBe(true);
}

/**
 * After SUCCESS: D1 has the task settled with the upstream's id (a different id), one
 * charge of the tenant's price and no refund; the simulator knows the task by its own id only.
 */
async function expectSettledSuccess(
  t: TenantWithKey,
  id: string,
  action: string,
  costMicros: number,
  parent: string | null = null,
) {
  const upstreamId = await upstreamIdOf(id);
  expect(upstreamId).not.toBe(id);
  const row = await taskRow(id);
  expect(row.tenant_id).toBe(t.tenantId);
  expect(row.key_id).toBe(t.keyId);
  expect(row.action).toBe(action);
  expect(row.status).toBe("SUCCESS");
  expect(row.settled_at).not.toBeNull();
  expect(row.cost).toBe(costMicros);
  expect(row.parent_task_id).toBe(parent);
  const ledger = await ledgerOfTask(id);
  if (costMicros > 0) {
    expect(ledger.map((r: any) => [r.kind, r.amount])).toEqual([["charge", -costMicros]]);
  } else {
    expect(ledger).toEqual([]);
  }
  const simulated = await simTasks();
  const upstreamTask = simulated.find((s) => s.id === upstreamId);
  expect(upstreamTask, `simulator has ${upstreamId}`).toBeDefined();
  expect(upstreamTask!.action).toBe(action === "modal" ? "inpaint" : action);
  expect(simulated.some((s) => s.id === id)).toBe(false);
  const tenant = await tenantRow(t.tenantId);
  expect(tenant.inflight).toBe(0);
  return { upstreamId, upstreamTask: upstreamTask as any };
}

async function expectUnified(key: string, id: string, urls: string[]) {
  const res = await getUnified(key, id);
  expect(res.status).toBe(200);
  expect(res.body).toEqual({
    code: 200,
    data: { id, status: "completed", progress: 100, result: { images: [{ url: urls }] }, error: null },
  });
}

describe("imagine", () => {
  it("answers exactly like the upstream, with our own task id, and GET shows the fresh task", async () => {
    const t = await newTenant();
    const prompt = marker("imagine a lighthouse");
    const res = await submit(t.key, "imagine", { prompt });
    const id = expectSubmitted(res);
    expect(res.body).toEqual({ code: 200, data: [{ status: "submitted", task_id: id }] });

    const price = await unitPrice(t.tenantId, "imagine", "relax");
    expect(price).toBe(67_560); // 45040 list + 20% markup = 54048, × 1.25 tenant multiplier
    const fresh = await get(t.key, id);
    expect(fresh.status).toBe(200);
    expectTaskObject(fresh.body, { id, action: "IMAGINE", status: "NOT_START", costMicros: price });
    expect(fresh.body.progress).toBe("0%");
    expect(fresh.body.prompt).toBe(prompt);
    const unifiedFresh = await getUnified(t.key, id);
    expect(unifiedFresh.body).toEqual({
      code: 200,
      data: { id, status: "pending", progress: 0, result: null, error: null },
    });

    const done = await driveToEnd(id, t.key);
    expectTaskObject(done, { id, action: "IMAGINE", status: "SUCCESS", costMicros: price });
    expect(done.prompt).toBe(prompt);
    expectGrid(done);
    const { upstreamId, upstreamTask } = await expectSettledSuccess(t, id, "imagine", price);
    expect(upstreamTask.prompt).toBe(prompt);
    expect(JSON.stringify(done.buttons)).not.toContain(upstreamId);
    await expectUnified(t.key, id, done.image_urls);
  });

  it("POST /v1/midjourney/generations with no action is imagine", async () => {
    const t = await newTenant();
    const prompt = marker("no action path");
    const res = await call("POST", "/v1/midjourney/generations", { key: t.key, body: { prompt } });
    const id = expectSubmitted(res);
    const done = await driveToEnd(id, t.key);
    const price = await unitPrice(t.tenantId, "imagine", "relax");
    expectTaskObject(done, { id, action: "IMAGINE", status: "SUCCESS", costMicros: price });
    expectGrid(done);
    const { upstreamTask } = await expectSettledSuccess(t, id, "imagine", price);
    expect(upstreamTask.prompt).toBe(prompt);
  });

  it("charges by speed: fast and turbo cost their own price", async () => {
    const t = await newTenant();
    for (const speed of ["fast", "turbo"] as const) {
      const { id, view } = await (async () => {
        const id = expectSubmitted(await submit(t.key, "imagine", { prompt: marker(speed), speed }));
        return { id, view: await driveToEnd(id, t.key) };
      })();
      const price = await unitPrice(t.tenantId, "imagine", speed);
      expect(view.cost).toBe(price / 1_000_000);
      await expectSettledSuccess(t, id, "imagine", price);
    }
  });

  it("keeps metadata with the task and accepts the documented Midjourney parameters", async () => {
    const t = await newTenant();
    const body = {
      prompt: marker("params"),
      image_urls: [BASE_URL],
      size: "16:9",
      version: "7",
      stylize: 1000,
      chaos: 100,
      weird: 3000,
      quality: 2,
      seed: 42,
      iw: 3,
      stop: 10,
      raw: true,
      metadata: { order: "A-17", tags: ["x"] },
    };
    const { id, view } = await (async () => {
      const id = expectSubmitted(await submit(t.key, "imagine", body));
      return { id, view: await driveToEnd(id, t.key) };
    })();
    expect(view.status).toBe("SUCCESS");
    expect(view.metadata).toEqual({ order: "A-17", tags: ["x"] });
    await expectSettledSuccess(t, id, "imagine", await unitPrice(t.tenantId, "imagine"));
  });
});

describe("image actions without a parent", () => {
  it("edits: prompt + image_urls → a grid", async () => {
    const t = await newTenant();
    const id = expectSubmitted(
      await submit(t.key, "edits", { prompt: marker("edit"), image_urls: [BASE_URL] }),
    );
    const done = await driveToEnd(id, t.key);
    const price = await unitPrice(t.tenantId, "edits");
    expectTaskObject(done, { id, action: "EDITS", status: "SUCCESS", costMicros: price });
    expectGrid(done);
    await expectSettledSuccess(t, id, "edits", price);
    await expectUnified(t.key, id, done.image_urls);
  });

  it("blend: 2 to 4 images → a grid", async () => {
    const t = await newTenant();
    for (const n of [2, 4]) {
      const urls = Array.from({ length: n }, (_, i) => `https://example.com/${i}.png`);
      const id = expectSubmitted(await submit(t.key, "blend", { image_urls: urls, dimensions: "PORTRAIT" }));
      const done = await driveToEnd(id, t.key);
      const price = await unitPrice(t.tenantId, "blend");
      expectTaskObject(done, { id, action: "BLEND", status: "SUCCESS", costMicros: price });
      expectGrid(done);
      await expectSettledSuccess(t, id, "blend", price);
    }
  });

  it("describe: one image → four prompt suggestions, no buttons", async () => {
    const t = await newTenant();
    const id = expectSubmitted(
      await submit(t.key, "describe", { image_urls: ["data:image/png;base64,iVBORw0KGgo="] }),
    );
    const done = await driveToEnd(id, t.key);
    const price = await unitPrice(t.tenantId, "describe");
    expectTaskObject(done, { id, action: "DESCRIBE", status: "SUCCESS", costMicros: price });
    expect(done.buttons).toEqual([]);
    expect(typeof done.description).toBe("string");
    for (const mark of ["1️⃣", "2️⃣", "3️⃣", "4️⃣"]) expect(done.description).toContain(mark);
    expect(done.prompt).toBe(done.description);
    await expectSettledSuccess(t, id, "describe", price);
  });
});

describe("follow-ups on a grid", () => {
  it("upscale by index: one image, upscaled buttons, parent recorded", async () => {
    const t = await newTenant();
    const parent = await gridParent(t.key);
    const id = expectSubmitted(await submit(t.key, "upscale", { task_id: parent.id, index: 2 }));
    const done = await driveToEnd(id, t.key);
    const price = await unitPrice(t.tenantId, "upscale");
    expectTaskObject(done, { id, action: "UPSCALE", status: "SUCCESS", costMicros: price });
    expectUpscaled(done);
    const { upstreamTask } = await expectSettledSuccess(t, id, "upscale", price, parent.id);
    // The upstream saw its own id for the parent, not ours.
    expect(upstreamTask.parent_id).toBe(await upstreamIdOf(parent.id));
    await expectUnified(t.key, id, done.image_urls);
  });

  it("upscale by custom_id taken from the parent's buttons", async () => {
    const t = await newTenant();
    const parent = await gridParent(t.key);
    const u3 = parent.view.buttons.find((b: any) => b.label === "U3").customId;
    const id = expectSubmitted(await submit(t.key, "upscale", { task_id: parent.id, custom_id: u3 }));
    const done = await driveToEnd(id, t.key);
    expect(done.status).toBe("SUCCESS");
    expectUpscaled(done);
    await expectSettledSuccess(t, id, "upscale", await unitPrice(t.tenantId, "upscale"), parent.id);
  });

  for (const [action, label] of [
    ["variation", "VARIATION"],
    ["high-variation", "HIGH_VARIATION"],
    ["low-variation", "LOW_VARIATION"],
  ] as const) {
    it(`${action}: task_id + index → a new grid`, async () => {
      const t = await newTenant();
      const parent = await gridParent(t.key);
      const id = expectSubmitted(await submit(t.key, action, { task_id: parent.id, index: 4 }));
      const done = await driveToEnd(id, t.key);
      const price = await unitPrice(t.tenantId, action);
      expectTaskObject(done, { id, action: label, status: "SUCCESS", costMicros: price });
      expectGrid(done);
      await expectSettledSuccess(t, id, action, price, parent.id);
    });
  }

  it("low-variation on an upscaled image", async () => {
    const t = await newTenant();
    const parent = await upscaledParent(t.key);
    const id = expectSubmitted(await submit(t.key, "low-variation", { task_id: parent.id, index: 1 }));
    const done = await driveToEnd(id, t.key);
    expect(done.status).toBe("SUCCESS");
    expectGrid(done);
  });

  it("reroll: task_id only → a new grid of the same prompt", async () => {
    const t = await newTenant();
    const parent = await gridParent(t.key);
    const id = expectSubmitted(await submit(t.key, "reroll", { task_id: parent.id }));
    const done = await driveToEnd(id, t.key);
    const price = await unitPrice(t.tenantId, "reroll");
    expectTaskObject(done, { id, action: "REROLL", status: "SUCCESS", costMicros: price });
    expect(done.prompt).toBe(parent.view.prompt);
    expectGrid(done);
    await expectSettledSuccess(t, id, "reroll", price, parent.id);
  });

  for (const [action, label] of [
    ["remix-strong", "REMIX_STRONG"],
    ["remix-subtle", "REMIX_SUBTLE"],
  ] as const) {
    it(`${action}: task_id + index + prompt → a grid`, async () => {
      const t = await newTenant();
      const parent = await gridParent(t.key);
      const prompt = marker("remixed");
      const id = expectSubmitted(await submit(t.key, action, { task_id: parent.id, index: 1, prompt }));
      const done = await driveToEnd(id, t.key);
      const price = await unitPrice(t.tenantId, action);
      expectTaskObject(done, { id, action: label, status: "SUCCESS", costMicros: price });
      expect(done.prompt).toBe(prompt);
      expectGrid(done);
      await expectSettledSuccess(t, id, action, price, parent.id);
    });
  }
});

describe("follow-ups on an upscaled image", () => {
  it("zoom: zoom_ratio → a grid that never enters MODAL", async () => {
    const t = await newTenant();
    const parent = await upscaledParent(t.key);
    const id = expectSubmitted(await submit(t.key, "zoom", { task_id: parent.id, zoom_ratio: 1.5 }));
    const done = await driveToEnd(id, t.key);
    const price = await unitPrice(t.tenantId, "zoom");
    expectTaskObject(done, { id, action: "ZOOM", status: "SUCCESS", costMicros: price });
    expectGrid(done);
    await expectSettledSuccess(t, id, "zoom", price, parent.id);
  });

  it("zoom by the Zoom Out custom_id", async () => {
    const t = await newTenant();
    const parent = await upscaledParent(t.key);
    const zoomOut = parent.view.buttons.find((b: any) => b.label === "Zoom Out 2x").customId;
    const id = expectSubmitted(await submit(t.key, "zoom", { task_id: parent.id, custom_id: zoomOut }));
    expect((await driveToEnd(id, t.key)).status).toBe("SUCCESS");
  });

  it("pan: direction → a grid; also by a pan custom_id without direction", async () => {
    const t = await newTenant();
    const parent = await upscaledParent(t.key);
    const id = expectSubmitted(await submit(t.key, "pan", { task_id: parent.id, direction: "left" }));
    const done = await driveToEnd(id, t.key);
    const price = await unitPrice(t.tenantId, "pan");
    expectTaskObject(done, { id, action: "PAN", status: "SUCCESS", costMicros: price });
    expectGrid(done);
    await expectSettledSuccess(t, id, "pan", price, parent.id);

    const up = parent.view.buttons.find((b: any) => b.label === "⬆️").customId;
    const byButton = expectSubmitted(await submit(t.key, "pan", { task_id: parent.id, custom_id: up }));
    expect((await driveToEnd(byButton, t.key)).status).toBe("SUCCESS");
  });

  it("inpaint answers 'modal'; /modal continues the SAME task id to SUBMITTED and SUCCESS, charged once", async () => {
    const t = await newTenant();
    const parent = await upscaledParent(t.key);
    const before = (await tenantRow(t.tenantId)).balance;

    const res = await submit(t.key, "inpaint", { task_id: parent.id });
    const id = expectSubmitted(res, "modal");
    expect(res.body).toEqual({ code: 200, data: [{ status: "modal", task_id: id }] });
    expect(await unitPrice(t.tenantId, "inpaint")).toBe(0);

    const waiting = await get(t.key, id);
    expectTaskObject(waiting.body, { id, action: "INPAINT", status: "MODAL", costMicros: 0 });
    expect(waiting.body.progress).toBe("15%");
    expect((await getUnified(t.key, id)).body.data.status).toBe("pending");
    // Inpaint itself is free: nothing charged yet.
    expect(await ledgerOfTask(id)).toEqual([]);
    expect((await tenantRow(t.tenantId)).balance).toBe(before);

    const modalRes = await submit(t.key, "modal", {
      task_id: id,
      prompt: marker("a red hat"),
      mask_url: "https://example.com/mask.png",
    });
    expect(modalRes.status, JSON.stringify(modalRes.body)).toBe(200);
    expect(modalRes.body).toEqual({ code: 200, data: [{ status: "submitted", task_id: id }] });

    const modalPrice = await unitPrice(t.tenantId, "modal");
    expect(modalPrice).toBeGreaterThan(0);
    const submitted = await get(t.key, id);
    expectTaskObject(submitted.body, { id, action: "INPAINT", status: "SUBMITTED", costMicros: modalPrice });
    expect((await tenantRow(t.tenantId)).balance).toBe(before - modalPrice);

    const done = await driveToEnd(id, t.key);
    expectTaskObject(done, { id, action: "INPAINT", status: "SUCCESS", costMicros: modalPrice });
    expectGrid(done);
    const ledger = await ledgerOfTask(id);
    expect(ledger.map((r: any) => [r.kind, r.amount, r.action])).toEqual([["charge", -modalPrice, "modal"]]);
    const row = await taskRow(id);
    expect(row.status).toBe("SUCCESS");
    expect(row.cost).toBe(modalPrice);
    const upstreamId = await upstreamIdOf(id);
    expect(upstreamId).not.toBe(id);
    const upstreamTask = (await simTasks()).find((s) => s.id === upstreamId);
    expect(upstreamTask).toMatchObject({ action: "inpaint", status: "SUCCESS" });
    expect((await tenantRow(t.tenantId)).balance).toBe(before - modalPrice);
  });
});

describe("video", () => {
  for (const batch of [1, 2, 4]) {
    it(`image_urls form with batch_size ${batch} gives ${batch} video_urls and costs ${batch} videos`, async () => {
      const t = await newTenant();
      const id = expectSubmitted(
        await submit(t.key, "video", { image_urls: [BASE_URL], prompt: marker("waves"), batch_size: batch }),
      );
      const done = await driveToEnd(id, t.key);
      const price = (await unitPrice(t.tenantId, "video", "", "480p")) * batch;
      expectTaskObject(done, { id, action: "VIDEO", status: "SUCCESS", costMicros: price });
      expect(done.video_urls).toHaveLength(batch);
      expect(new Set(done.video_urls).size).toBe(batch);
      expect(done.video_url).toBe(done.video_urls[0]);
      await expectSettledSuccess(t, id, "video", price);
      await expectUnified(t.key, id, done.video_urls);
    });
  }

  for (const batch of [3, 0, 8, -1]) {
    it(`batch_size ${batch} counts as 1 (one video, one video's price)`, async () => {
      const t = await newTenant();
      const id = expectSubmitted(await submit(t.key, "video", { image_urls: [BASE_URL], batch_size: batch }));
      const done = await driveToEnd(id, t.key);
      const price = await unitPrice(t.tenantId, "video", "", "480p");
      expect(done.status).toBe("SUCCESS");
      expect(done.video_urls).toHaveLength(1);
      expect(done.cost).toBe(price / 1_000_000);
      await expectSettledSuccess(t, id, "video", price);
    });
  }

  it("720p costs the 720p price per video", async () => {
    const t = await newTenant();
    const id = expectSubmitted(
      await submit(t.key, "video", { image_urls: [BASE_URL], video_type: "vid_1.1_i2v_720", batch_size: 2 }),
    );
    const done = await driveToEnd(id, t.key);
    const price = (await unitPrice(t.tenantId, "video", "", "720p")) * 2;
    expect(price).toBeGreaterThan((await unitPrice(t.tenantId, "video", "", "480p")) * 2);
    expect(done.video_urls).toHaveLength(2);
    expect(done.cost).toBe(price / 1_000_000);
    await expectSettledSuccess(t, id, "video", price);
  });

  it("task_id form (a SUCCESS imagine + index) with batch_size 2", async () => {
    const t = await newTenant();
    const parent = await gridParent(t.key);
    const id = expectSubmitted(
      await submit(t.key, "video", { task_id: parent.id, index: 3, batch_size: 2, motion: "high" }),
    );
    const done = await driveToEnd(id, t.key);
    const price = (await unitPrice(t.tenantId, "video", "", "480p")) * 2;
    expectTaskObject(done, { id, action: "VIDEO", status: "SUCCESS", costMicros: price });
    expect(done.video_urls).toHaveLength(2);
    const { upstreamTask } = await expectSettledSuccess(t, id, "video", price, parent.id);
    expect(upstreamTask.parent_id).toBe(await upstreamIdOf(parent.id));
  });
});

describe("task ids", () => {
  it("every submit mints a fresh, time-ordered task_<ULID> of ours", async () => {
    const t = await newTenant();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push(expectSubmitted(await submit(t.key, "imagine", { prompt: marker() })));
    expect(new Set(ids).size).toBe(3);
    for (const id of ids) expect(id).toMatch(TASK_ID);
    // ULIDs start with the time: ids of successive submits sort in submit order.
    expect([...ids].sort()).toEqual(ids);
    for (const id of ids) await driveToEnd(id, t.key);
    const upstream = await Promise.all(ids.map(upstreamIdOf));
    for (const u of upstream) expect(ids).not.toContain(u);
  });
});
