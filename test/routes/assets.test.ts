/**
 * Hosted results, serving and settings (issue 14): GET /assets/… with signed links (403 on
 * tampering or expiry, 404 unknown), Range for video players, links outliving the
 * upstream's files, no upstream host in a hosted tenant's task JSON (GET and SSE), and the
 * tenant's asset settings on create and PATCH.
 */
import { createExecutionContext, env, SELF, waitOnExecutionContext } from "cloudflare:test";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { signAssetLink } from "../../src/domain/asset-links";
import { purgeExpiredAssets } from "../../src/services/assets";
import { readRecord } from "../durable/durable-helpers";
import { call, driveToEnd, sim, submit, tenantWithKey } from "../helpers";
import { openTaskStream, payloads } from "../streams/sse";

const SECRET = "test-asset-signing-secret";
const GATEWAY = "http://gateway.test";

let hosted: { tenantId: string; key: string; taskId: string; view: Record<string, any> };

beforeAll(async () => {
  const t = await tenantWithKey(50_000_000, {}, { asset_mode: "hosted" });
  const submitted = await submit(t.key, "imagine", { prompt: `served ${crypto.randomUUID()}` });
  const taskId = submitted.body.data[0].task_id as string;
  const view = await driveToEnd(taskId, t.key);
  hosted = { tenantId: t.tenantId, key: t.key, taskId, view };
});

async function errorCode(response: Response): Promise<string> {
  return (await response.json<{ error: { code: string } }>()).error.code;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

describe("GET /assets/… (signed links)", () => {
  it("serves the file with its type, length, ETag and long immutable caching", async () => {
    const response = await SELF.fetch(hosted.view.grid_image_url);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("image/png");
    expect(response.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(response.headers.get("etag")).toMatch(/^".+"$/);
    expect(response.headers.get("accept-ranges")).toBe("bytes");
    const bytes = new Uint8Array(await response.arrayBuffer());
    expect(Number(response.headers.get("content-length"))).toBe(bytes.length);
    expect([...bytes.slice(1, 4)]).toEqual([0x50, 0x4e, 0x47]); // "PNG"

    const again = await SELF.fetch(hosted.view.grid_image_url, {
      headers: { "if-none-match": response.headers.get("etag")! },
    });
    expect(again.status).toBe(304);
  });

  it("answers HEAD with the headers and no body, and a second GET (cached or not) the same bytes", async () => {
    const first = new Uint8Array(await (await SELF.fetch(hosted.view.image_urls[1])).arrayBuffer());
    const head = await SELF.fetch(hosted.view.image_urls[1], { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get("content-length"))).toBe(first.length);
    expect((await head.arrayBuffer()).byteLength).toBe(0);
    const second = await SELF.fetch(hosted.view.image_urls[1]);
    expect(second.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(new Uint8Array(await second.arrayBuffer())).toEqual(first);
  });

  it("answers one Range with 206 and Content-Range, and 416 past the end", async () => {
    const whole = new Uint8Array(await (await SELF.fetch(hosted.view.grid_image_url)).arrayBuffer());
    const first = await SELF.fetch(hosted.view.grid_image_url, { headers: { range: "bytes=0-99" } });
    expect(first.status).toBe(206);
    expect(first.headers.get("content-range")).toBe(`bytes 0-99/${whole.length}`);
    expect(first.headers.get("content-length")).toBe("100");
    expect(new Uint8Array(await first.arrayBuffer())).toEqual(whole.slice(0, 100));

    const tail = await SELF.fetch(hosted.view.grid_image_url, { headers: { range: "bytes=-10" } });
    expect(tail.status).toBe(206);
    expect(new Uint8Array(await tail.arrayBuffer())).toEqual(whole.slice(-10));

    const open = await SELF.fetch(hosted.view.grid_image_url, {
      headers: { range: `bytes=${whole.length - 5}-` },
    });
    expect(open.status).toBe(206);
    expect(new Uint8Array(await open.arrayBuffer())).toEqual(whole.slice(-5));

    const past = await SELF.fetch(hosted.view.grid_image_url, {
      headers: { range: `bytes=${whole.length}-` },
    });
    expect(past.status).toBe(416);
    expect(past.headers.get("content-range")).toBe(`bytes */${whole.length}`);
  });

  it("keeps working after the upstream has forgotten the task's files", async () => {
    const upstreamId = (await readRecord(hosted.taskId))!.meta.upstreamTaskId;
    const upstreamGrid = String((await readRecord(hosted.taskId))!.state.result.grid_image_url);
    expect((await sim("POST", `/_sim/tasks/${upstreamId}/forget-files`)).files).toBe("forgotten");
    const gone = await env.SIMULATOR.fetch(upstreamGrid);
    expect(gone.status).toBe(404);
    await gone.body?.cancel();
    for (const link of [hosted.view.grid_image_url, ...hosted.view.image_urls]) {
      const response = await SELF.fetch(link);
      expect(response.status, link).toBe(200);
      await response.body?.cancel();
    }
  });

  it("a tampered signature, path or expiry is 403 asset_link_invalid", async () => {
    const link = new URL(hosted.view.grid_image_url);
    const sig = link.searchParams.get("sig")!;
    const flipped = new URL(link);
    flipped.searchParams.set("sig", `${sig[0] === "A" ? "B" : "A"}${sig.slice(1)}`);
    const otherFile = new URL(link);
    otherFile.pathname = link.pathname.replace(/grid\.png$/, "0.png");
    const later = new URL(link);
    later.searchParams.set("exp", String(Number(link.searchParams.get("exp")) + 3600));
    const unsigned = new URL(link);
    unsigned.search = "";
    const otherTenant = new URL(link);
    otherTenant.pathname = link.pathname.replace(hosted.tenantId, "ten_00000000000000000000000000");
    for (const bad of [flipped, otherFile, later, unsigned, otherTenant]) {
      const response = await SELF.fetch(bad.toString());
      expect(response.status, bad.toString()).toBe(403);
      expect(await errorCode(response)).toBe("asset_link_invalid");
    }
  });

  it("an expired link is 403 asset_link_expired", async () => {
    const name = new URL(hosted.view.grid_image_url).pathname.replace(/^\/assets\//, "");
    const expired = await signAssetLink(GATEWAY, name, nowSeconds() - 1, SECRET);
    const response = await SELF.fetch(expired);
    expect(response.status).toBe(403);
    expect(await errorCode(response)).toBe("asset_link_expired");
  });

  it("a validly signed link to a file that does not exist is 404 asset_not_found", async () => {
    const link = await signAssetLink(
      GATEWAY,
      `t/${hosted.tenantId}/${hosted.taskId}/nothing.png`,
      nowSeconds() + 60,
      SECRET,
    );
    const response = await SELF.fetch(link);
    expect(response.status).toBe(404);
    expect(await errorCode(response)).toBe("asset_not_found");
  });

  it("links expire after the tenant's asset_link_ttl_seconds", async () => {
    const t = await tenantWithKey(50_000_000, {}, { asset_mode: "hosted", asset_link_ttl_seconds: 120 });
    const submitted = await submit(t.key, "imagine", { prompt: `ttl ${crypto.randomUUID()}` });
    const view = await driveToEnd(submitted.body.data[0].task_id, t.key);
    const exp = Number(new URL(view.grid_image_url).searchParams.get("exp"));
    // Signed on the task's clock when the files were stored (tests move that clock ahead).
    const record = (await readRecord(view.id)) as unknown as { assets: { storedAt: number } };
    expect(exp).toBe(Math.floor(record.assets.storedAt / 1000) + 120);
  });
});

describe("capability links (asset_links: capability)", () => {
  it("carry a 128-bit token per file, no expiry, and serve like signed links (Range included)", async () => {
    const t = await tenantWithKey(50_000_000, {}, { asset_mode: "hosted", asset_links: "capability" });
    const submitted = await submit(t.key, "imagine", { prompt: `capability ${crypto.randomUUID()}` });
    const taskId = submitted.body.data[0].task_id as string;
    const view = await driveToEnd(taskId, t.key);
    const links = [view.grid_image_url, ...view.image_urls] as string[];
    const tokens = links.map((link) => {
      const match = /^http:\/\/gateway\.test\/assets\/c\/([A-Za-z0-9_-]{22})\/[\w.-]+$/.exec(link);
      expect(match, link).not.toBeNull();
      return match![1]!;
    });
    expect(new Set(tokens).size).toBe(links.length);
    for (const link of links) {
      expect(link).not.toContain(taskId);
      expect(link).not.toContain(t.tenantId);
      expect(link).not.toContain("exp=");
    }
    const whole = await SELF.fetch(links[0]!);
    expect(whole.status).toBe(200);
    expect(whole.headers.get("content-type")).toBe("image/png");
    const bytes = new Uint8Array(await whole.arrayBuffer());
    const part = await SELF.fetch(links[0]!, { headers: { range: "bytes=10-19" } });
    expect(part.status).toBe(206);
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(bytes.slice(10, 20));
  });

  it("an unknown or malformed token is 404 asset_not_found", async () => {
    for (const path of ["/assets/c/AAAAAAAAAAAAAAAAAAAAAA/grid.png", "/assets/c/short/grid.png"]) {
      const response = await SELF.fetch(`${GATEWAY}${path}`);
      expect(response.status, path).toBe(404);
      expect(await errorCode(response)).toBe("asset_not_found");
    }
  });

  it("work until retention deletes the file, then 404 at once", async () => {
    const t = await tenantWithKey(
      50_000_000,
      {},
      { asset_mode: "hosted", asset_links: "capability", asset_retention_days: 1 },
    );
    const submitted = await submit(t.key, "imagine", { prompt: `kept ${crypto.randomUUID()}` });
    const view = await driveToEnd(submitted.body.data[0].task_id, t.key);
    const first = await SELF.fetch(view.grid_image_url);
    expect(first.status).toBe(200);
    await first.arrayBuffer();
    await purgeExpiredAssets(env, Date.now() + 2 * 86_400_000);
    const gone = await SELF.fetch(view.grid_image_url);
    expect(gone.status).toBe(404);
    expect(await errorCode(gone)).toBe("asset_not_found");
  });
});

describe("no upstream host in a hosted tenant's task JSON", () => {
  it("GET /v1/midjourney/{id} and GET /v1/tasks/{id}", async () => {
    const bare = await call("GET", `/v1/midjourney/${hosted.taskId}`, { key: hosted.key });
    expect(bare.status).toBe(200);
    expect(JSON.stringify(bare.body)).not.toContain("upstream.test");
    expect(bare.body.buttons.length).toBeGreaterThan(0);
    const unified = await call("GET", `/v1/tasks/${hosted.taskId}`, { key: hosted.key });
    expect(unified.status).toBe(200);
    expect(JSON.stringify(unified.body)).not.toContain("upstream.test");
    expect(unified.body.data.result.images[0].url[0]).toMatch(/^http:\/\/gateway\.test\/assets\//);
  });

  it("the SSE events carry the gateway's links", async () => {
    const stream = await openTaskStream(hosted.taskId, { key: hosted.key, query: "last_event_id=0" });
    const events = payloads(await stream.rest(5_000));
    expect(events.length).toBeGreaterThan(0);
    const success = events.find((e) => e.status === "SUCCESS");
    expect(success?.grid_image_url).toMatch(/^http:\/\/gateway\.test\/assets\//);
    for (const event of events) expect(JSON.stringify(event)).not.toContain("upstream.test");
  });
});

describe("tenant asset settings", () => {
  it("default to upstream mode, 7-day links and 30-day retention, and are set on create and PATCH", async () => {
    const created = await call("POST", "/admin/tenants", {
      admin: true,
      body: { name: `a-${crypto.randomUUID()}` },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      asset_mode: "upstream",
      asset_link_ttl_seconds: 604_800,
      asset_retention_days: 30,
      asset_links: "signed",
      storage_price_micros_per_gb_month: 0,
    });
    const patched = await call("PATCH", `/admin/tenants/${created.body.id}`, {
      admin: true,
      body: {
        asset_mode: "hosted",
        asset_link_ttl_seconds: 3600,
        asset_retention_days: 7,
        asset_links: "capability",
        storage_price_micros_per_gb_month: 20_000,
      },
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({
      asset_mode: "hosted",
      asset_link_ttl_seconds: 3600,
      asset_retention_days: 7,
      asset_links: "capability",
      storage_price_micros_per_gb_month: 20_000,
    });
    const read = await call("GET", `/admin/tenants/${created.body.id}`, { admin: true });
    expect(read.body.asset_mode).toBe("hosted");
  });

  it("refuses an unknown mode or an out-of-range lifetime with 400 naming the field", async () => {
    for (const [body, field] of [
      [{ name: "x", asset_mode: "mirror" }, "asset_mode"],
      [{ name: "x", asset_link_ttl_seconds: 5 }, "asset_link_ttl_seconds"],
      [{ name: "x", asset_retention_days: 0 }, "asset_retention_days"],
      [{ name: "x", asset_links: "open" }, "asset_links"],
      [{ name: "x", storage_price_micros_per_gb_month: -1 }, "storage_price_micros_per_gb_month"],
      [{ name: "x", storage_price_micros_per_gb_month: 1.5 }, "storage_price_micros_per_gb_month"],
    ] as const) {
      const response = await call("POST", "/admin/tenants", { admin: true, body });
      expect(response.status).toBe(400);
      expect(response.body.error.field).toBe(field);
    }
  });
});

describe("a gateway that cannot host", () => {
  it("turning a tenant to hosted without ASSET_SIGNING_SECRET is 500 configuration_error naming it, nothing written", async () => {
    const { createApp } = await import("../../src/app");
    const app = createApp();
    const ctx = createExecutionContext();
    const bare = { ...env, ASSET_SIGNING_SECRET: undefined };
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    const name = `unhostable-${crypto.randomUUID()}`;
    const response = await app.fetch(
      new Request("http://gateway.test/admin/tenants", {
        method: "POST",
        headers: { authorization: "Bearer test-admin-token", "content-type": "application/json" },
        body: JSON.stringify({ name, asset_mode: "hosted" }),
      }),
      bare,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    const lines = log.mock.calls.map((args) => String(args[0]));
    log.mockRestore();
    expect(response.status).toBe(500);
    const body = await response.json<{ error: { code: string; message: string } }>();
    expect(body.error.code).toBe("configuration_error");
    expect(body.error.message).toContain("ASSET_SIGNING_SECRET");
    expect(lines.some((line) => line.includes('"missing_setting":"ASSET_SIGNING_SECRET"'))).toBe(true);
    const row = await env.DB.prepare("SELECT 1 FROM tenants WHERE name = ?1").bind(name).first();
    expect(row).toBeNull();
  });
});
