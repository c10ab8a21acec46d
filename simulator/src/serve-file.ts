/**
 * Serving one CDN file the way a real CDN does: Content-Length, a strong
 * ETag (If-None-Match -> 304), single byte ranges (206 with Content-Range,
 * 416 when unsatisfiable; If-Range falls back to the whole file), HEAD, and a
 * body streamed in chunks made on demand, so large files never sit in memory.
 */

export interface ServedFile {
  contentType: string;
  size: number;
  /** Quoted strong ETag. */
  etag: string;
  /** Bytes [start, end) of the file. */
  read(start: number, end: number): Uint8Array;
}

const STREAM_CHUNK_BYTES = 64 * 1024;

type RangeAnswer =
  | { kind: "whole" }
  | { kind: "part"; start: number; end: number }
  | { kind: "unsatisfiable" };

/**
 * One `bytes=a-b`, `bytes=a-` or `bytes=-n` range; `end` is exclusive. Anything else
 * (several ranges, another unit, nonsense) is ignored and the whole file served, as RFC 9110 allows.
 */
export function parseRange(header: string | null, size: number): RangeAnswer {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header?.trim() ?? "");
  if (!match || (match[1] === "" && match[2] === "")) return { kind: "whole" };
  const [first, last] = [match[1] as string, match[2] as string];
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0) return { kind: "unsatisfiable" };
    return { kind: "part", start: Math.max(0, size - suffix), end: size };
  }
  const start = Number(first);
  if (start >= size) return { kind: "unsatisfiable" };
  if (last === "") return { kind: "part", start, end: size };
  if (Number(last) < start) return { kind: "whole" };
  return { kind: "part", start, end: Math.min(Number(last) + 1, size) };
}

/**
 * The body as a FixedLengthStream: its length is known to the runtime, so it goes out
 * with Content-Length (not chunked) and a caller can hand it straight to R2 put. Chunks
 * are made one at a time as the reader takes them (a write waits for its read).
 */
function byteStream(file: ServedFile, start: number, end: number): ReadableStream<Uint8Array> {
  const { readable, writable } = new FixedLengthStream(end - start);
  void pump(file, start, end, writable.getWriter());
  return readable;
}

async function pump(
  file: ServedFile,
  start: number,
  end: number,
  writer: WritableStreamDefaultWriter<Uint8Array>,
): Promise<void> {
  try {
    for (let at = start; at < end; at += STREAM_CHUNK_BYTES) {
      await writer.write(file.read(at, Math.min(at + STREAM_CHUNK_BYTES, end)));
    }
    await writer.close();
  } catch {
    // The reader went away (a cancelled download): stop making bytes.
  }
}

function etagMatches(header: string | null, etag: string): boolean {
  if (header === null) return false;
  return header.trim() === "*" || header.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
}

export function serveFile(request: Request, file: ServedFile, cacheControl: string): Response {
  const headers = new Headers({
    "content-type": file.contentType,
    etag: file.etag,
    "accept-ranges": "bytes",
    "cache-control": cacheControl,
  });
  if (etagMatches(request.headers.get("if-none-match"), file.etag)) {
    return new Response(null, { status: 304, headers });
  }
  const ifRange = request.headers.get("if-range");
  const range =
    ifRange !== null && ifRange !== file.etag
      ? ({ kind: "whole" } as const)
      : parseRange(request.headers.get("range"), file.size);
  if (range.kind === "unsatisfiable") {
    headers.set("content-range", `bytes */${file.size}`);
    headers.delete("content-type");
    return new Response(null, { status: 416, headers });
  }
  const [start, end] = range.kind === "part" ? [range.start, range.end] : [0, file.size];
  headers.set("content-length", String(end - start));
  if (range.kind === "part") headers.set("content-range", `bytes ${start}-${end - 1}/${file.size}`);
  const body = request.method === "HEAD" ? null : byteStream(file, start, end);
  return new Response(body, { status: range.kind === "part" ? 206 : 200, headers });
}
