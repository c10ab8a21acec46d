import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { control, imagine, newKey, ORIGIN, submitOk, task, upscaled } from "./sim-helpers";

// The CDN files the results point at: real PNG and MP4 bytes, ranges, ETags.

const cdn = (path: string, headers: Record<string, string> = {}, method = "GET") =>
  env.SIMULATOR.fetch(path.startsWith("http") ? path : `${ORIGIN}${path}`, { method, headers });

const bytesOf = async (response: Response) => new Uint8Array(await response.arrayBuffer());

const ascii = (bytes: Uint8Array) => new TextDecoder("latin1").decode(bytes);

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

interface DecodedPng {
  width: number;
  height: number;
  /** RGB rows, filter bytes removed. */
  pixels: Uint8Array;
  text: string;
}

/** A strict little PNG reader: signature, chunk CRCs, IHDR, zlib-inflated IDAT, IEND last. */
async function decodePng(bytes: Uint8Array): Promise<DecodedPng> {
  expect(Array.from(bytes.subarray(0, 8))).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks: Array<{ type: string; data: Uint8Array }> = [];
  for (let at = 8; at < bytes.length; ) {
    const length = view.getUint32(at);
    const typeAndData = bytes.subarray(at + 4, at + 8 + length);
    expect(view.getUint32(at + 8 + length), "chunk CRC").toBe(crc32(typeAndData));
    chunks.push({ type: ascii(typeAndData.subarray(0, 4)), data: typeAndData.subarray(4) });
    at += 12 + length;
  }
  expect(chunks[0]?.type).toBe("IHDR");
  expect(chunks.at(-1)?.type).toBe("IEND");
  const header = new DataView(chunks[0]!.data.buffer, chunks[0]!.data.byteOffset, 13);
  const [width, height] = [header.getUint32(0), header.getUint32(4)];
  expect(Array.from(chunks[0]!.data.subarray(8))).toEqual([8, 2, 0, 0, 0]);
  const idat = chunks.filter((c) => c.type === "IDAT").map((c) => c.data);
  const inflated = await bytesOf(
    new Response(new Blob(idat).stream().pipeThrough(new DecompressionStream("deflate"))),
  );
  const rowBytes = width * 3 + 1;
  expect(inflated.length).toBe(height * rowBytes);
  const pixels = new Uint8Array(width * height * 3);
  for (let row = 0; row < height; row++) {
    expect(inflated[row * rowBytes], "filter type").toBe(0);
    pixels.set(inflated.subarray(row * rowBytes + 1, (row + 1) * rowBytes), row * width * 3);
  }
  const itxt = chunks.find((c) => c.type === "iTXt");
  const text = itxt ? new TextDecoder().decode(itxt.data).split("\0").at(-1)! : "";
  return { width, height, pixels, text };
}

function cellOfGrid(grid: DecodedPng, cell: number): Uint8Array {
  const size = grid.width / 2;
  const out = new Uint8Array(size * size * 3);
  const [left, top] = [(cell % 2) * size, Math.floor(cell / 2) * size];
  for (let row = 0; row < size; row++) {
    const from = ((top + row) * grid.width + left) * 3;
    out.set(grid.pixels.subarray(from, from + size * 3), row * size * 3);
  }
  return out;
}

describe("PNG results", () => {
  it("results report .png URLs that serve valid PNGs with length, ETag and cache headers", async () => {
    const key = newKey();
    const id = await imagine(key, "a red fox in snow");
    const view = await task(key, id);
    expect(view.grid_image_url).toBe(`${ORIGIN}/cdn/${id}/grid.png`);
    expect(view.image_urls).toEqual([0, 1, 2, 3].map((n) => `${ORIGIN}/cdn/${id}/${n}.png`));
    const unified = await (await cdn(`/v1/tasks/${id}`, { authorization: `Bearer ${key}` })).json<any>();
    expect(unified.data.result.images[0].url).toEqual(view.image_urls);

    const response = await cdn(view.grid_image_url);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("image/png");
    expect(response.headers.get("accept-ranges")).toBe("bytes");
    expect(response.headers.get("cache-control")).toContain("max-age=");
    expect(response.headers.get("etag")).toMatch(/^"[0-9a-f]{32}"$/);
    const bytes = await bytesOf(response);
    expect(Number(response.headers.get("content-length"))).toBe(bytes.length);
    const grid = await decodePng(bytes);
    expect([grid.width, grid.height]).toEqual([256, 256]);
    expect(grid.text).toBe("a red fox in snow");

    const cells = await Promise.all(
      view.image_urls.map(async (url: string) => decodePng(await bytesOf(await cdn(url)))),
    );
    cells.forEach((cell, n) => {
      expect([cell.width, cell.height]).toEqual([128, 128]);
      expect(cell.text).toBe(`#${n + 1} a red fox in snow`);
      // The grid is the four cells, side by side.
      expect(cell.pixels).toEqual(cellOfGrid(grid, n));
    });
    expect(new Set(cells.map((cell) => cell.pixels.join(","))).size).toBe(4);
  });

  it("is deterministic per prompt, differs between prompts, and an upscale is its grid cell", async () => {
    const key = newKey();
    const [a1, a2, b] = [await imagine(key, "same"), await imagine(key, "same"), await imagine(key, "other")];
    const png = async (path: string) => bytesOf(await cdn(path));
    expect(await png(`/cdn/${a1}/2.png`)).toEqual(await png(`/cdn/${a2}/2.png`));
    expect(await png(`/cdn/${a1}/2.png`)).not.toEqual(await png(`/cdn/${b}/2.png`));
    const { grid, upscale } = await upscaled(key, 3);
    const view = await task(key, upscale);
    expect(view.image_urls).toEqual([`${ORIGIN}/cdn/${upscale}/0.png`]);
    expect(await png(`/cdn/${upscale}/0.png`)).toEqual(await png(`/cdn/${grid}/2.png`));
    expect((await cdn(`/cdn/${upscale}/1.png`)).status).toBe(404);
    expect((await cdn(`/cdn/${upscale}/grid.png`)).status).toBe(404);
    expect((await cdn(`/cdn/${grid}/4.png`)).status).toBe(404);
    expect((await cdn(`/cdn/${grid}/0.gif`)).status).toBe(404);
  });

  it("answers If-None-Match with 304, byte ranges with 206, and HEAD without a body", async () => {
    const key = newKey();
    const path = `/cdn/${await imagine(key, "ranges")}/1.png`;
    const whole = await cdn(path);
    const etag = whole.headers.get("etag")!;
    const bytes = await bytesOf(whole);
    const again = await cdn(path, { "if-none-match": etag });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe("");
    const part = await cdn(path, { range: "bytes=0-7" });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 0-7/${bytes.length}`);
    expect(await bytesOf(part)).toEqual(bytes.subarray(0, 8));
    const head = await cdn(path, {}, "HEAD");
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String(bytes.length));
    expect(head.headers.get("etag")).toBe(etag);
    expect(await head.text()).toBe("");
  });
});

describe("MP4 results", () => {
  async function videoTask(key: string, batchSize = 1): Promise<any> {
    const id = await submitOk(key, "video", {
      image_urls: ["https://example.com/a.png"],
      batch_size: batchSize,
    });
    return task(key, id);
  }

  it("serves a 256 KiB ftyp+mdat file by default, different per video, the same on every fetch", async () => {
    const key = newKey();
    const view = await videoTask(key, 2);
    expect(view.video_url).toBe(`${ORIGIN}/cdn/${view.id}/video_0.mp4`);
    const first = await cdn(view.video_urls[0]);
    expect(first.status).toBe(200);
    expect(first.headers.get("content-type")).toBe("video/mp4");
    expect(first.headers.get("content-length")).toBe(String(256 * 1024));
    expect(first.headers.get("accept-ranges")).toBe("bytes");
    const bytes = await bytesOf(first);
    expect(bytes.length).toBe(256 * 1024);
    const view32 = new DataView(bytes.buffer);
    expect(ascii(bytes.subarray(4, 12))).toBe("ftypisom");
    const ftypSize = view32.getUint32(0);
    expect(ascii(bytes.subarray(ftypSize + 4, ftypSize + 8))).toBe("mdat");
    expect(ftypSize + view32.getUint32(ftypSize)).toBe(bytes.length);
    expect(await bytesOf(await cdn(view.video_urls[0]))).toEqual(bytes);
    const second = await bytesOf(await cdn(view.video_urls[1]));
    expect(second.subarray(0, 40)).toEqual(bytes.subarray(0, 40));
    expect(second).not.toEqual(bytes);
    expect((await cdn(view.video_urls[1])).headers.get("etag")).not.toBe(first.headers.get("etag"));
  });

  it("answers ranges (206, suffix, open-ended), 416 past the end, and ignores multi-ranges", async () => {
    const key = newKey();
    const url = (await videoTask(key)).video_url;
    const whole = await bytesOf(await cdn(url));
    const size = whole.length;
    const cases: Array<[string, number, number]> = [
      ["bytes=100-199", 100, 200],
      ["bytes=262000-", 262000, size],
      ["bytes=-500", size - 500, size],
      ["bytes=5-999999999", 5, size],
    ];
    for (const [range, start, end] of cases) {
      const part = await cdn(url, { range });
      expect(part.status, range).toBe(206);
      expect(part.headers.get("content-range"), range).toBe(`bytes ${start}-${end - 1}/${size}`);
      expect(part.headers.get("content-length"), range).toBe(String(end - start));
      expect(await bytesOf(part), range).toEqual(whole.subarray(start, end));
    }
    for (const range of [`bytes=${size}-`, "bytes=-0"]) {
      const refused = await cdn(url, { range });
      expect(refused.status, range).toBe(416);
      expect(refused.headers.get("content-range")).toBe(`bytes */${size}`);
    }
    for (const range of ["bytes=0-1,5-6", "items=0-1", "bytes=9-3"]) {
      const full = await cdn(url, { range });
      expect(full.status, range).toBe(200);
      expect((await bytesOf(full)).length).toBe(size);
    }
    const etag = (await cdn(url, {}, "HEAD")).headers.get("etag")!;
    expect((await cdn(url, { range: "bytes=0-9", "if-range": etag })).status).toBe(206);
    const stale = await cdn(url, { range: "bytes=0-9", "if-range": '"stale"' });
    expect(stale.status).toBe(200);
    expect((await bytesOf(stale)).length).toBe(size);
  });

  it("streams multi-MiB files in chunks, sized by ?bytes= or per key", async () => {
    const key = newKey();
    const view = await videoTask(key);
    const big = 5 * 1024 * 1024 + 3;
    const response = await cdn(`${view.video_url}?bytes=${big}`);
    expect(response.headers.get("content-length")).toBe(String(big));
    const reader = response.body!.getReader();
    let [received, chunks] = [0, 0];
    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      received += next.value.length;
      chunks++;
    }
    expect(received).toBe(big);
    expect(chunks).toBeGreaterThan(1);
    expect((await cdn(`${view.video_url}?bytes=12`)).status).toBe(400);

    // The body's length is known to the runtime (what R2 put needs): passed on, it goes out
    // with Content-Length, not chunked. The webhook sink records the request's headers.
    const sink = `files-${crypto.randomUUID()}`;
    const source = await cdn(`${view.video_url}?bytes=5000`);
    await env.SIMULATOR.fetch(`${ORIGIN}/_sim/webhooks/${sink}`, { method: "POST", body: source.body });
    const [forwarded] = (await control("GET", `/webhooks/${sink}`)).body;
    expect(forwarded.headers["content-length"]).toBe("5000");
    expect(forwarded.headers["transfer-encoding"]).toBeUndefined();

    const config = await control("POST", "/config", { video_bytes: 1024 * 1024, key });
    expect(config.body).toMatchObject({ video_bytes: 1024 * 1024, scope: key });
    expect((await cdn(view.video_url, {}, "HEAD")).headers.get("content-length")).toBe(String(1024 * 1024));
    const other = newKey();
    expect((await cdn((await videoTask(other)).video_url, {}, "HEAD")).headers.get("content-length")).toBe(
      String(256 * 1024),
    );
    await control("POST", "/config", { video_bytes: null, key });
    expect((await cdn(view.video_url, {}, "HEAD")).headers.get("content-length")).toBe(String(256 * 1024));
    expect((await control("POST", "/config", { video_bytes: 10, key })).status).toBe(400);
    expect((await control("POST", "/config", { key })).status).toBe(400);
  });
});
