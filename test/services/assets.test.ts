/**
 * Hosted results, the copy (issue 14): a hosted tenant's successful task has every result
 * file in R2, byte for byte the upstream's, before its SUCCESS is published; a file that
 * cannot be copied keeps the upstream's URL; retention deletes files and their usage rows.
 */
import { env, SELF } from "cloudflare:test";
import { afterAll, describe, expect, it } from "vitest";
import { purgeExpiredAssets } from "../../src/services/assets";
import { readRecord } from "../durable/durable-helpers";
import { call, driveToEnd, sim, submit, tenantWithKey } from "../helpers";

const UPSTREAM_KEY = "sk-sim-gateway-tests";
const VIDEO_BYTES = 3 * 1024 * 1024 + 17;

afterAll(async () => {
  await sim("POST", "/_sim/config", { video_bytes: null, key: UPSTREAM_KEY });
});

async function hostedTenant(settings: Record<string, unknown> = {}) {
  return tenantWithKey(50_000_000, {}, { asset_mode: "hosted", ...settings });
}

async function finishedTask(key: string, action: string, body: Record<string, unknown>) {
  const submitted = await submit(key, action, body);
  expect(submitted.status, JSON.stringify(submitted.body)).toBe(200);
  const taskId = submitted.body.data[0].task_id as string;
  const view = await driveToEnd(taskId, key);
  return { taskId, view };
}

/** The upstream's URLs as the record keeps them (for follow-ups), from the object's storage. */
async function upstreamResult(taskId: string) {
  return (await readRecord(taskId))!.state.result as Record<string, unknown>;
}

/** The body's length and SHA-256 (comparing digests, not multi-MiB arrays element by element). */
async function bytesOf(response: Response): Promise<{ length: number; sha256: string }> {
  expect(response.status).toBe(200);
  const bytes = await response.arrayBuffer();
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return {
    length: bytes.byteLength,
    sha256: [...digest].map((b) => b.toString(16).padStart(2, "0")).join(""),
  };
}

describe("copy on success (hosted tenants)", () => {
  it("copies the grid and every image, byte for byte, and the view links only the gateway", async () => {
    const t = await hostedTenant();
    const { taskId, view } = await finishedTask(t.key, "imagine", {
      prompt: `hosted fox ${crypto.randomUUID()}`,
    });
    expect(view.status).toBe("SUCCESS");
    const upstream = await upstreamResult(taskId);
    expect(String(upstream.grid_image_url)).toMatch(/^http:\/\/upstream\.test\/cdn\//);

    const links = [view.grid_image_url, ...view.image_urls] as string[];
    const originals = [upstream.grid_image_url, ...(upstream.image_urls as string[])] as string[];
    expect(links).toHaveLength(5);
    for (const [i, link] of links.entries()) {
      expect(link).toMatch(
        new RegExp(`^http://gateway\\.test/assets/t/${t.tenantId}/${taskId}/[\\w.]+\\?exp=\\d+&sig=`),
      );
      const ours = await bytesOf(await SELF.fetch(link));
      const theirs = await bytesOf(await env.SIMULATOR.fetch(originals[i]!));
      expect(ours).toEqual(theirs);
    }
    const grid = await SELF.fetch(view.grid_image_url);
    expect(grid.headers.get("content-type")).toBe("image/png");
    await grid.body?.cancel();
    expect(JSON.stringify(view)).not.toContain("upstream.test");
  });

  it("streams a multi-MiB video into R2 with its length and type, identical to the upstream's", async () => {
    await sim("POST", "/_sim/config", { video_bytes: VIDEO_BYTES, key: UPSTREAM_KEY });
    const t = await hostedTenant();
    const { taskId, view } = await finishedTask(t.key, "video", {
      image_urls: ["https://example.com/a.png"],
      prompt: `hosted video ${crypto.randomUUID()}`,
    });
    expect(view.status).toBe("SUCCESS");
    expect(view.video_url).toMatch(/^http:\/\/gateway\.test\/assets\//);
    const object = await env.ASSETS_BUCKET!.head(`t/${t.tenantId}/${taskId}/video_0.mp4`);
    expect(object?.size).toBe(VIDEO_BYTES);
    expect(object?.httpMetadata?.contentType).toBe("video/mp4");
    const upstream = await upstreamResult(taskId);
    const ours = await bytesOf(await SELF.fetch(view.video_url));
    const theirs = await bytesOf(await env.SIMULATOR.fetch(String(upstream.video_url)));
    expect(ours.length).toBe(VIDEO_BYTES);
    expect(theirs.length).toBe(VIDEO_BYTES);
    expect(ours).toEqual(theirs);
  });

  it("records the bytes stored per tenant, shown at GET /admin/assets/usage", async () => {
    const t = await hostedTenant();
    const { taskId } = await finishedTask(t.key, "imagine", { prompt: `usage ${crypto.randomUUID()}` });
    const listed = await env.ASSETS_BUCKET!.list({ prefix: `t/${t.tenantId}/${taskId}/` });
    const stored = listed.objects.reduce((sum, o) => sum + o.size, 0);
    const usage = await call("GET", `/admin/assets/usage?tenant_id=${t.tenantId}`, { admin: true });
    expect(usage.status).toBe(200);
    expect(usage.body.data).toEqual([
      {
        tenant_id: t.tenantId,
        files: 5,
        bytes: stored,
        served_bytes: 0,
        served_responses: 0,
        storage_charged_micros: 0,
        storage_owed_micros: 0,
      },
    ]);
  });

  it("falls back to the upstream's URLs when a file cannot be copied, and still publishes SUCCESS", async () => {
    const t = await hostedTenant();
    const submitted = await submit(t.key, "imagine", { prompt: `fallback ${crypto.randomUUID()}` });
    const taskId = submitted.body.data[0].task_id as string;
    const upstreamId = (await readRecord(taskId))!.meta.upstreamTaskId;
    expect((await sim("POST", `/_sim/tasks/${upstreamId}/forget-files`)).files).toBe("forgotten");
    const view = await driveToEnd(taskId, t.key);
    expect(view.status).toBe("SUCCESS");
    expect(view.grid_image_url).toMatch(/^http:\/\/upstream\.test\/cdn\//);
    expect((await env.ASSETS_BUCKET!.list({ prefix: `t/${t.tenantId}/` })).objects).toHaveLength(0);
  });

  it("an upstream-mode tenant (the default) is untouched: nothing copied, the upstream's URLs as before", async () => {
    const t = await tenantWithKey(50_000_000);
    const { taskId, view } = await finishedTask(t.key, "imagine", { prompt: `plain ${crypto.randomUUID()}` });
    const upstream = await upstreamResult(taskId);
    expect(view.grid_image_url).toBe(upstream.grid_image_url);
    expect(view.image_urls).toEqual(upstream.image_urls);
    expect(view).not.toHaveProperty("assets");
    expect(await readRecord(taskId)).not.toHaveProperty("assets");
    expect((await env.ASSETS_BUCKET!.list({ prefix: `t/${t.tenantId}/` })).objects).toHaveLength(0);
  });

  it("follow-ups on a hosted task are forwarded with the upstream's ids, as today", async () => {
    const t = await hostedTenant();
    const { taskId } = await finishedTask(t.key, "imagine", { prompt: `parent ${crypto.randomUUID()}` });
    const upscale = await submit(t.key, "upscale", { task_id: taskId, index: 1 });
    expect(upscale.status, JSON.stringify(upscale.body)).toBe(200);
    const child = upscale.body.data[0].task_id as string;
    const view = await driveToEnd(child, t.key);
    expect(view.status).toBe("SUCCESS");
    expect(view.image_urls[0]).toMatch(/^http:\/\/gateway\.test\/assets\//);
  });
});

describe("retention", () => {
  it("the cron deletes files past their tenant's retention, with their usage rows, and keeps the rest", async () => {
    const short = await hostedTenant({ asset_retention_days: 1 });
    const long = await hostedTenant({ asset_retention_days: 90 });
    const gone = await finishedTask(short.key, "imagine", { prompt: `short ${crypto.randomUUID()}` });
    const kept = await finishedTask(long.key, "imagine", { prompt: `long ${crypto.randomUUID()}` });

    expect(await purgeExpiredAssets(env, Date.now())).toBe(0);
    const deleted = await purgeExpiredAssets(env, Date.now() + 2 * 86_400_000);
    expect(deleted).toBeGreaterThanOrEqual(5);

    expect((await env.ASSETS_BUCKET!.list({ prefix: `t/${short.tenantId}/` })).objects).toHaveLength(0);
    expect((await env.ASSETS_BUCKET!.list({ prefix: `t/${long.tenantId}/` })).objects).toHaveLength(5);
    const gridGone = await SELF.fetch(gone.view.grid_image_url);
    expect(gridGone.status).toBe(404);
    expect((await gridGone.json<{ error: { code: string } }>()).error.code).toBe("asset_not_found");
    const gridKept = await SELF.fetch(kept.view.grid_image_url);
    expect(gridKept.status).toBe(200);
    await gridKept.body?.cancel();
    const usage = await call("GET", `/admin/assets/usage?tenant_id=${short.tenantId}`, { admin: true });
    expect(usage.body.data).toEqual([]);
  });
});
