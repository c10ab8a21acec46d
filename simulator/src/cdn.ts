/**
 * The CDN: a task's result files, without auth like a public CDN. Results
 * report PNG and MP4 URLs (real bytes, ranges, ETags); the older SVG drawings
 * of the same pictures still answer at their own names.
 */

import { hashString } from "./ids";
import { gridSvg, imageSvg } from "./images";
import { MAX_VIDEO_BYTES, MIN_VIDEO_BYTES, videoFile } from "./mp4";
import { gridPng, imagePng } from "./png";
import { type ServedFile, serveFile } from "./serve-file";
import type { ImageSource } from "./store";

const CACHE_CONTROL = "public, max-age=86400";

const svgHeaders = { "content-type": "image/svg+xml; charset=utf-8", "cache-control": CACHE_CONTROL };

type CdnAnswer = { kind: "svg"; svg: string } | { kind: "file"; file: ServedFile } | null;

/** Which picture a file name shows for this task: null if the task has no such file. */
function pictureCell(source: ImageSource, name: string): number | "grid" | null {
  if (name === "grid") return source.kind === "grid" ? "grid" : null;
  if (!/^\d$/.test(name)) return null;
  const n = Number(name);
  if (source.kind === "grid" && n < 4) return n;
  if (source.kind === "single" && n === 0) return source.pickIndex ?? 0;
  return null;
}

async function wholeFile(bytes: Uint8Array, contentType = "image/png"): Promise<ServedFile> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const etag = `"${Array.from(digest.subarray(0, 16), (b) => b.toString(16).padStart(2, "0")).join("")}"`;
  return {
    contentType,
    size: bytes.length,
    etag,
    read: (start, end) => bytes.subarray(start, end),
  };
}

function mp4File(source: ImageSource, index: number, size: number): ServedFile {
  const seed = `${source.taskId}#video${index}`;
  const video = videoFile(seed, size);
  const tag = `${seed}|${size}`;
  return {
    contentType: "video/mp4",
    size,
    etag: `"mp4-${size.toString(16)}-${hashString(tag).toString(16)}"`,
    read: video.read,
  };
}

async function cdnAnswer(source: ImageSource, file: string, videoBytes: number): Promise<CdnAnswer> {
  const [, name, extension] = /^([^.]+)\.(svg|png|mp4)$/.exec(file) ?? [];
  if (extension === "mp4") {
    const video = /^video_(\d+)$/.exec(name ?? "");
    const index = Number(video?.[1]);
    if (!video || source.kind !== "video" || index >= source.batchSize) return null;
    if (source.videoFile) {
      return { kind: "file", file: await wholeFile(source.videoFile.bytes, source.videoFile.contentType) };
    }
    return { kind: "file", file: mp4File(source, index, videoBytes) };
  }
  const cell = pictureCell(source, name ?? "");
  if (cell === null || extension === undefined) return null;
  if (extension === "svg") {
    const svg =
      cell === "grid" ? gridSvg(source.seed, source.prompt) : imageSvg(source.seed, cell, source.prompt);
    return { kind: "svg", svg };
  }
  const png =
    cell === "grid" ? gridPng(source.seed, source.prompt) : imagePng(source.seed, cell, source.prompt);
  return { kind: "file", file: await wholeFile(png) };
}

/** `?bytes=N` on a video URL overrides the configured video size (null: none given, NaN: invalid). */
export function requestedVideoBytes(raw: string | undefined): number | null {
  if (raw === undefined) return null;
  const value = Number(raw);
  return Number.isInteger(value) && value >= MIN_VIDEO_BYTES && value <= MAX_VIDEO_BYTES ? value : Number.NaN;
}

/** The CDN's answer for one file of a task, or null (404) if the task has no such file. */
export async function cdnResponse(
  request: Request,
  source: ImageSource,
  file: string,
  videoBytes: number,
): Promise<Response | null> {
  const answer = await cdnAnswer(source, file, videoBytes);
  if (answer === null) return null;
  if (answer.kind === "svg") return new Response(answer.svg, { headers: svgHeaders });
  return serveFile(request, answer.file, CACHE_CONTROL);
}
