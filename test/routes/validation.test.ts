/**
 * Validation per action: a bad submit is a 400 in the one error shape that names the
 * field, and NOTHING is written: no task row, no ledger row, no in-flight slot, no spend,
 * balance unchanged, and the upstream never saw it.
 */
import { SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { call, submit, type TenantWithKey, tenantWithKey } from "../helpers";
import {
  BASE_URL,
  expectError,
  expectNothingWritten,
  fault,
  faultPending,
  footprint,
  gridParent,
  marker,
} from "./route-helpers";

const img = (n: number) => Array.from({ length: n }, (_, i) => `https://example.com/${i}.png`);
const GOOD_ID = "task_01KV52C0TEJSYZMCG0NCS4YWKK";

/** [action, body, field the error must name] — each body is wrong in exactly one way. */
type Case = [action: string, body: Record<string, unknown>, field: string, label?: string];

const withParent = (parent: string): Case[] => [
  // imagine
  ["imagine", {}, "prompt", "missing prompt"],
  ["imagine", { prompt: "" }, "prompt", "empty prompt"],
  ["imagine", { prompt: "   " }, "prompt", "blank prompt"],
  ["imagine", { prompt: 42 }, "prompt", "prompt not a string"],
  ["imagine", { prompt: "x", stylize: 1001 }, "stylize"],
  ["imagine", { prompt: "x", stylize: -1 }, "stylize"],
  ["imagine", { prompt: "x", chaos: 101 }, "chaos"],
  ["imagine", { prompt: "x", weird: 3001 }, "weird"],
  ["imagine", { prompt: "x", quality: 3 }, "quality"],
  ["imagine", { prompt: "x", iw: 3.5 }, "iw"],
  ["imagine", { prompt: "x", stop: 9 }, "stop"],
  ["imagine", { prompt: "x", repeat: 41 }, "repeat"],
  ["imagine", { prompt: "x", version: "4" }, "version"],
  ["imagine", { prompt: "x", size: "wide" }, "size"],
  ["imagine", { prompt: "x", speed: "slow" }, "speed"],
  ["imagine", { prompt: "x", image_urls: img(5) }, "image_urls", "5 image_urls"],
  ["imagine", { prompt: "x", image_urls: ["not a url"] }, "image_urls", "image url not a URL"],
  ["imagine", { prompt: "x", image_urls: ["ftp://example.com/a.png"] }, "image_urls", "ftp image url"],
  ["imagine", { prompt: "x", metadata: "nope" }, "metadata"],
  ["imagine", { prompt: "x", colour: "red" }, "colour", "unknown field"],
  // edits
  ["edits", { prompt: "x" }, "image_urls", "edits without image_urls"],
  ["edits", { image_urls: [BASE_URL] }, "prompt", "edits without prompt"],
  ["edits", { prompt: "x", image_urls: [] }, "image_urls", "edits with no image"],
  // blend
  ["blend", { image_urls: img(1) }, "image_urls", "blend with 1 image"],
  ["blend", { image_urls: img(5) }, "image_urls", "blend with 5 images"],
  ["blend", {}, "image_urls", "blend without images"],
  ["blend", { image_urls: img(2), dimensions: "WIDE" }, "dimensions"],
  ["blend", { image_urls: img(2), prompt: "x" }, "prompt", "blend takes no prompt"],
  // describe
  ["describe", { image_urls: img(2) }, "image_urls", "describe with 2 images"],
  ["describe", { image_urls: [] }, "image_urls", "describe with 0 images"],
  ["describe", {}, "image_urls", "describe without images"],
  // grid follow-ups
  ["upscale", { index: 1 }, "task_id", "upscale without task_id"],
  ["upscale", { task_id: parent }, "index", "upscale without index or custom_id"],
  ["upscale", { task_id: parent, index: 5 }, "index", "upscale index 5"],
  ["upscale", { task_id: parent, index: 0 }, "index", "upscale index 0"],
  ["upscale", { task_id: parent, index: 1.5 }, "index", "upscale index 1.5"],
  [
    "upscale",
    { task_id: parent, index: 1, custom_id: "MJ::JOB::upsample::1::x" },
    "index",
    "index+custom_id",
  ],
  ["upscale", { task_id: "task_123", index: 1 }, "task_id", "task_id too short"],
  ["upscale", { task_id: "task_01kv52c0tejsyzmcg0ncs4ywkk", index: 1 }, "task_id", "lower-case task_id"],
  ["upscale", { task_id: "01KV52C0TEJSYZMCG0NCS4YWKK", index: 1 }, "task_id", "task_id without prefix"],
  ["upscale", { task_id: "task_01KV52C0TEJSYZMCG0NCS4YWKU", index: 1 }, "task_id", "task_id with U"],
  ["variation", { task_id: parent, index: 5 }, "index"],
  ["variation", { task_id: parent }, "index", "variation without index"],
  ["high-variation", { task_id: parent, index: 5 }, "index"],
  [
    "low-variation",
    { task_id: parent, index: 1, custom_id: "MJ::x" },
    "index",
    "low-variation index+custom_id",
  ],
  ["reroll", {}, "task_id", "reroll without task_id"],
  ["reroll", { task_id: parent, index: 1 }, "index", "reroll takes no index"],
  // upscaled follow-ups
  ["zoom", {}, "task_id", "zoom without task_id"],
  ["zoom", { task_id: parent, zoom_ratio: "2" }, "zoom_ratio"],
  ["zoom", { task_id: parent, index: 1, custom_id: "MJ::x" }, "index", "zoom index+custom_id"],
  ["pan", { task_id: parent }, "direction", "pan without direction"],
  ["pan", { task_id: parent, direction: "sideways" }, "direction"],
  ["pan", { direction: "left" }, "task_id", "pan without task_id"],
  ["inpaint", {}, "task_id", "inpaint without task_id"],
  ["inpaint", { task_id: parent, index: 7 }, "index", "inpaint index 7"],
  // modal
  ["modal", {}, "task_id", "modal without task_id"],
  ["modal", { task_id: "abc" }, "task_id", "modal bad task_id"],
  ["modal", { task_id: parent, mask_url: "mask.png" }, "mask_url", "modal relative mask_url"],
  // video
  ["video", {}, "image_urls", "video with neither image_urls nor task_id"],
  ["video", { image_urls: [BASE_URL], task_id: parent }, "task_id", "video with both"],
  ["video", { image_urls: img(2) }, "image_urls", "video with 2 first frames"],
  ["video", { image_urls: [BASE_URL], video_type: "vid_2_1080" }, "video_type", "bad video_type"],
  ["video", { task_id: parent, index: 4 }, "index", "video index 4"],
  ["video", { image_urls: [BASE_URL], index: 1 }, "index", "video index without task_id"],
  ["video", { image_urls: [BASE_URL], motion: "medium" }, "motion"],
  ["video", { image_urls: [BASE_URL], batch_size: "2" }, "batch_size", "batch_size as a string"],
  ["video", { image_urls: [BASE_URL], speed: "fast" }, "speed", "video has no speed"],
  ["video", { image_urls: [BASE_URL], end_url: "nope" }, "end_url"],
  // remix
  ["remix-strong", { task_id: parent }, "index", "remix-strong without index"],
  ["remix-subtle", { task_id: parent, index: 5 }, "index", "remix-subtle index 5"],
  ["remix-subtle", { index: 1 }, "task_id", "remix-subtle without task_id"],
];

let t: TenantWithKey;
let parentId: string;

beforeAll(async () => {
  t = await tenantWithKey(10_000_000);
  // A real SUCCESS parent of this tenant, so that only the one bad field can be the reason.
  parentId = (await gridParent(t.key)).id;
});

/** One tenant for all cases would see the parent's rows; each case gets its own, fresh tenant. */
async function freshTenant() {
  return tenantWithKey(10_000_000);
}

describe("400 per action, naming the field, writing nothing", () => {
  it.each(
    withParent("PARENT").map(([action, body, field, label]) => [
      `${action}: ${label ?? field}`,
      action,
      body,
      field,
    ]),
  )("%s", async (_name, action, rawBody, field) => {
    const tenant = await freshTenant();
    // The parent is another tenant's task here, which must not matter: validation comes first.
    const body = JSON.parse(JSON.stringify(rawBody).replaceAll("PARENT", parentId));
    const before = await footprint(tenant);
    const res = await submit(tenant.key, action, body);
    const error = expectError(res, 400, "invalid_request");
    expect(error.type).toBe("invalid_request_error");
    expect(error.message).toContain(field);
    // The field itself, or an element of it ("image_urls.0").
    expect(`${error.field}.`.startsWith(`${field}.`), `field ${error.field}`).toBe(true);
    await expectNothingWritten(tenant, before);
  });

  it("the parent tenant itself also gets 400 for a bad body on its own parent, nothing written", async () => {
    const before = await footprint(t);
    const res = await submit(t.key, "upscale", { task_id: parentId, index: 5 });
    const error = expectError(res, 400, "invalid_request");
    expect(error.field).toBe("index");
    const after = await footprint(t);
    expect(after.tasks).toEqual(before.tasks);
    expect(after.ledger).toEqual(before.ledger);
    expect(after.balance).toBe(before.balance);
  });

  it("the upstream never sees a refused submit (a sentinel fault on its prompt stays unconsumed)", async () => {
    const tenant = await freshTenant();
    const prompt = marker("never-forwarded");
    const sentinel = await fault({ type: "status", status: 418, on: "submit", prompt_contains: prompt });
    const before = await footprint(tenant);
    for (const body of [
      { prompt, stylize: 1001 },
      { prompt, chaos: 101 },
      { prompt, unknown_field: true },
      { prompt, image_urls: img(5) },
    ]) {
      expectError(await submit(tenant.key, "imagine", body), 400, "invalid_request");
    }
    expectError(await submit(tenant.key, "edits", { prompt }), 400, "invalid_request");
    expectError(
      await submit(tenant.key, "remix-strong", { task_id: GOOD_ID, prompt, index: 9 }),
      400,
      "invalid_request",
    );
    expect(await faultPending(sentinel.id)).toBe(true);
    await expectNothingWritten(tenant, before);
    // The sentinel really would have caught a forwarded submit: a valid one consumes it.
    const ok = await submit(tenant.key, "imagine", { prompt });
    expect(ok.status).toBe(400); // the simulated 418 is passed through as a 4xx
    expect(await faultPending(sentinel.id)).toBe(false);
  });

  it("an unknown action is a 404 in the error shape, nothing written", async () => {
    const tenant = await freshTenant();
    const before = await footprint(tenant);
    const res = await submit(tenant.key, "upsample", { task_id: GOOD_ID, index: 1 });
    expectError(res, 404, "not_found");
    await expectNothingWritten(tenant, before);
  });
});

describe("bodies that are not a JSON object", () => {
  async function raw(tenant: TenantWithKey, body: string | undefined, contentType: string | null) {
    const headers: Record<string, string> = { authorization: `Bearer ${tenant.key}` };
    if (contentType) headers["content-type"] = contentType;
    const response = await SELF.fetch("http://gateway.test/v1/midjourney/generations/imagine", {
      method: "POST",
      headers,
      body,
    });
    const text = await response.text();
    let parsed: any = text;
    try {
      parsed = JSON.parse(text);
    } catch {}
    return { status: response.status, body: parsed, headers: response.headers };
  }

  it("invalid JSON → 400 invalid_json", async () => {
    const tenant = await freshTenant();
    const before = await footprint(tenant);
    for (const body of ['{"prompt": "a cat"', "{prompt: 'a cat'}", "", "nul"]) {
      const error = expectError(await raw(tenant, body, "application/json"), 400, "invalid_json");
      expect(error.message).toMatch(/JSON/);
    }
    await expectNothingWritten(tenant, before);
  });

  it("JSON that is not an object → 400", async () => {
    const tenant = await freshTenant();
    const before = await footprint(tenant);
    for (const body of ["[]", '"a cat"', "42", "null", '[{"prompt":"a cat"}]']) {
      const res = await raw(tenant, body, "application/json");
      expectError(res, 400, "invalid_request");
    }
    await expectNothingWritten(tenant, before);
  });

  it("a valid JSON body under a wrong or missing content-type → 400 that says so", async () => {
    const tenant = await freshTenant();
    const before = await footprint(tenant);
    const body = JSON.stringify({ prompt: "a cat" });
    for (const contentType of ["text/plain", "application/x-www-form-urlencoded", null]) {
      const res = await raw(tenant, body, contentType);
      const error = expectError(res, 400, "invalid_request");
      expect(error.message.toLowerCase(), String(contentType)).toContain("content-type");
      expect(error.field).toBe("content-type");
    }
    await expectNothingWritten(tenant, before);
  });

  it("application/json with a charset parameter is fine", async () => {
    const tenant = await freshTenant();
    const res = await raw(tenant, JSON.stringify({ prompt: marker() }), "application/json; charset=utf-8");
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  });
});

describe("admin bodies are validated the same way", () => {
  it("tenant create: missing name, unknown field, bad multiplier → 400 naming the field", async () => {
    for (const [body, field] of [
      [{}, "name"],
      [{ name: "x", plan: "gold" }, "plan"],
      [{ name: "x", price_multiplier_bps: 0 }, "price_multiplier_bps"],
      [{ name: "x", cors_origins: ["not an origin"] }, "cors_origins"],
    ] as const) {
      const res = await call("POST", "/admin/tenants", { admin: true, body });
      const error = expectError(res, 400, "invalid_request");
      expect(error.message).toContain(field);
    }
  });

  it("key create: bad allowed_actions and expires_at → 400 naming the field", async () => {
    const tenant = await freshTenant();
    for (const [body, field] of [
      [{ name: "k", allowed_actions: ["imagine", "teleport"] }, "allowed_actions"],
      [{ name: "k", expires_at: "tomorrow" }, "expires_at"],
      [{ name: "k", rpm_limit: 0 }, "rpm_limit"],
    ] as const) {
      const res = await call("POST", `/admin/tenants/${tenant.tenantId}/keys`, { admin: true, body });
      const error = expectError(res, 400, "invalid_request");
      expect(error.message).toContain(field);
    }
  });
});
