/**
 * "Videos seek in a browser" (issue 14): a hosted tenant's video link, played in Chromium's
 * <video> element, seeks to a later time, and every byte the player fetched came from the
 * gateway as a 206 answer to a Range request. The simulator's synthetic MP4s are not
 * playable, so the test encodes a real 3-second VP8 clip in the browser (WebCodecs), muxes
 * it into a WebM with cues, and hands it to the simulator (PUT /_sim/video-file) for the
 * stack's upstream key; the gateway copies it into R2 at SUCCESS like any result.
 */
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, CHROMIUM_ARGS, CHROMIUM_PATH, gatewayUrl, simulatorUrl } from "./support";

/** The key `npm start`'s stack gives the gateway for the simulator. */
const SIM_KEY = "sk-sim-local";
const FRAMES = 30;
const FRAME_MS = 100;

let browser: Browser;

beforeAll(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
});

afterAll(async () => {
  await fetch(`${simulatorUrl()}/_sim/video-file?key=${SIM_KEY}`, { method: "DELETE" }).catch(() => {});
  await browser?.close();
});

// --- a minimal WebM (Matroska) writer: every size as an 8-byte vint, so offsets are known upfront

const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
};
/** Big-endian, in the last `bytes` bytes of 8. */
const uint = (value: number, bytes = 8) => {
  const full = new Uint8Array(8);
  new DataView(full.buffer).setBigUint64(0, BigInt(value));
  return full.slice(8 - bytes);
};
const size8 = (n: number) => concat([new Uint8Array([0x01]), uint(n, 8).slice(1)]);
const id = (hex: number) => {
  const bytes: number[] = [];
  for (let v = hex; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return new Uint8Array(bytes);
};
const el = (elementId: number, ...payload: Uint8Array[]) => {
  const body = concat(payload);
  return concat([id(elementId), size8(body.length), body]);
};
const text = (value: string) => new TextEncoder().encode(value);
const float64 = (value: number) => {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setFloat64(0, value);
  return out;
};

function webm(frames: Array<{ ms: number; data: Uint8Array }>, width: number, height: number): Uint8Array {
  const header = el(
    0x1a45dfa3,
    el(0x4286, uint(1, 1)),
    el(0x42f7, uint(1, 1)),
    el(0x42f2, uint(4, 1)),
    el(0x42f3, uint(8, 1)),
    el(0x4282, text("webm")),
    el(0x4287, uint(2, 1)),
    el(0x4285, uint(2, 1)),
  );
  const info = el(
    0x1549a966,
    el(0x2ad7b1, uint(1_000_000, 4)),
    el(0x4489, float64(frames.length * FRAME_MS)),
    el(0x4d80, text("e2e")),
    el(0x5741, text("e2e")),
  );
  const tracks = el(
    0x1654ae6b,
    el(
      0xae,
      el(0xd7, uint(1, 1)),
      el(0x73c5, uint(1, 1)),
      el(0x83, uint(1, 1)),
      el(0x9c, uint(0, 1)),
      el(0x86, text("V_VP8")),
      el(0xe0, el(0xb0, uint(width, 2)), el(0xba, uint(height, 2))),
    ),
  );
  const clusters = frames.map(({ ms, data }) =>
    el(0x1f43b675, el(0xe7, uint(ms, 8)), el(0xa3, new Uint8Array([0x81, 0, 0, 0x80]), data)),
  );
  const cues = (positions: number[]) =>
    el(
      0x1c53bb6b,
      ...frames.map(({ ms }, i) =>
        el(0xbb, el(0xb3, uint(ms, 8)), el(0xb7, el(0xf7, uint(1, 1)), el(0xf1, uint(positions[i]!, 8)))),
      ),
    );
  const cuesLength = cues(frames.map(() => 0)).length;
  const positions: number[] = [];
  let at = info.length + tracks.length + cuesLength;
  for (const cluster of clusters) {
    positions.push(at);
    at += cluster.length;
  }
  return concat([header, el(0x18538067, info, tracks, cues(positions), ...clusters)]);
}

/** 30 key frames of VP8 drawn and encoded by the browser itself (WebCodecs, software). */
async function encodedFrames() {
  const page = await browser.newPage();
  try {
    await page.goto(`${gatewayUrl()}/health`); // a secure context (loopback) for WebCodecs
    const frames = await page.evaluate(
      async ({ count, frameMs }) => {
        const width = 160;
        const height = 120;
        const chunks: Array<{ ms: number; data: number[] }> = [];
        const encoder = new VideoEncoder({
          output: (chunk) => {
            const data = new Uint8Array(chunk.byteLength);
            chunk.copyTo(data);
            chunks.push({ ms: Math.round(chunk.timestamp / 1000), data: [...data] });
          },
          error: (error) => {
            throw error;
          },
        });
        encoder.configure({ codec: "vp8", width, height, bitrate: 400_000, framerate: 1000 / frameMs });
        const canvas = new OffscreenCanvas(width, height);
        const context = canvas.getContext("2d")!;
        for (let i = 0; i < count; i++) {
          context.fillStyle = `hsl(${(i * 12) % 360} 70% 50%)`;
          context.fillRect(0, 0, width, height);
          context.fillStyle = "#fff";
          context.font = "48px sans-serif";
          context.fillText(String(i), 50, 80);
          const frame = new VideoFrame(canvas, { timestamp: i * frameMs * 1000, duration: frameMs * 1000 });
          encoder.encode(frame, { keyFrame: true });
          frame.close();
        }
        await encoder.flush();
        return chunks;
      },
      { count: FRAMES, frameMs: FRAME_MS },
    );
    return frames.map((f) => ({ ms: f.ms, data: new Uint8Array(f.data) }));
  } finally {
    await page.close();
  }
}

async function hostedVideoLink(): Promise<string> {
  const tenant = await api("POST", "/admin/tenants", {
    admin: true,
    body: { name: `e2e-video-${Date.now()}`, asset_mode: "hosted" },
  });
  expect(tenant.status, JSON.stringify(tenant.body)).toBe(201);
  await api("POST", `/admin/tenants/${tenant.body.id}/topups`, {
    admin: true,
    body: { amount_micros: 10_000_000, reason: "e2e" },
  });
  const key = (
    await api("POST", `/admin/tenants/${tenant.body.id}/keys`, { admin: true, body: { name: "v" } })
  ).body.key as string;
  const finished = async (action: string, body: unknown) => {
    const submitted = await api("POST", `/v1/midjourney/generations/${action}`, { key, body });
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(200);
    const taskId = submitted.body.data[0].task_id as string;
    for (let i = 0; i < 240; i++) {
      const view = await api("GET", `/v1/midjourney/${taskId}`, { key });
      if (view.body.status === "SUCCESS") return view.body;
      expect(["FAILURE", "CANCEL"]).not.toContain(view.body.status);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    throw new Error(`${action} did not finish`);
  };
  const grid = await finished("imagine", { prompt: "a lighthouse, to animate" });
  const video = await finished("video", { task_id: grid.id, index: 0 });
  return video.video_url as string;
}

describe("a hosted video in Chromium's <video>", () => {
  it("seeks to 2 s, every byte fetched from the gateway by Range (206)", async () => {
    const clip = webm(await encodedFrames(), 160, 120);
    const put = await fetch(`${simulatorUrl()}/_sim/video-file?key=${SIM_KEY}`, {
      method: "PUT",
      headers: { "content-type": "video/webm" },
      body: new Blob([clip.slice().buffer]),
    });
    expect(put.status, await put.clone().text()).toBe(200);
    const link = await hostedVideoLink();
    expect(link.startsWith(`${gatewayUrl()}/assets/`), link).toBe(true);

    const page = await browser.newPage();
    const answers: Array<{ status: number; range: string | undefined; contentRange: string | undefined }> =
      [];
    page.on("response", async (response) => {
      if (!response.url().startsWith(`${gatewayUrl()}/assets/`)) return;
      answers.push({
        status: response.status(),
        range: (await response.request().allHeaders()).range,
        contentRange: response.headers()["content-range"],
      });
    });
    try {
      await page.goto(`${gatewayUrl()}/health`);
      const result = await page.evaluate(async (src) => {
        const video = document.createElement("video");
        video.muted = true;
        video.preload = "auto";
        document.body.append(video);
        const once = (name: string) =>
          new Promise<void>((resolve, reject) => {
            video.addEventListener(name, () => resolve(), { once: true });
            video.addEventListener("error", () => reject(new Error(`media error ${video.error?.code}`)), {
              once: true,
            });
          });
        const loaded = once("loadedmetadata");
        video.src = src;
        await loaded;
        const duration = video.duration;
        const seeked = once("seeked");
        video.currentTime = 2;
        await seeked;
        return { duration, currentTime: video.currentTime, error: video.error?.code ?? null };
      }, link);
      expect(result.error).toBeNull();
      expect(result.duration).toBeCloseTo((FRAMES * FRAME_MS) / 1000, 1);
      expect(Math.abs(result.currentTime - 2)).toBeLessThan(0.15);
      await new Promise((resolve) => setTimeout(resolve, 200)); // let the response listeners record
      expect(answers.length).toBeGreaterThan(0);
      for (const answer of answers) {
        expect(answer.status, JSON.stringify(answers)).toBe(206);
        expect(answer.range).toMatch(/^bytes=\d+-\d*$/);
        expect(answer.contentRange).toMatch(new RegExp(`^bytes \\d+-\\d+/${clip.length}$`));
      }
    } finally {
      await page.close();
    }
  });
});
