/**
 * Real PNG files for the CDN routes: small RGB pictures drawn from a hash of
 * the task's seed text and the cell index, encoded without any library
 * (stored, uncompressed deflate blocks: synchronous and byte-for-byte stable).
 * An upscale's picture is exactly the grid cell it was cut from, and the grid
 * is the four cells side by side.
 */

import { hashString, randomSource } from "./ids";

/** Side of one picture in pixels: small, so tests stay fast, but a real image. */
export const PNG_CELL_SIZE = 128;
const CHANNELS = 3;

type Rgb = [number, number, number];

function hslToRgb(hue: number, saturation: number, lightness: number): Rgb {
  const s = saturation / 100;
  const l = lightness / 100;
  const k = (n: number) => (n + hue / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => l - a * Math.max(-1, Math.min(k(n) - 3, Math.min(9 - k(n), 1)));
  return [Math.round(f(0) * 255), Math.round(f(8) * 255), Math.round(f(4) * 255)];
}

interface Shape {
  round: boolean;
  x: number;
  y: number;
  r: number;
  color: Rgb;
}

/** One picture's pixels (RGB, row-major), PNG_CELL_SIZE square. */
function cellPixels(seed: string, cell: number): Uint8Array {
  const random = randomSource(hashString(`${seed}#${cell}`));
  const pick = (min: number, max: number) => Math.round(min + random() * (max - min));
  const hue = pick(0, 359);
  const from = hslToRgb(hue, 70, 35);
  const to = hslToRgb((hue + 40) % 360, 70, 15);
  const shapes: Shape[] = Array.from({ length: pick(3, 6) }, () => ({
    round: random() < 0.5,
    x: pick(10, PNG_CELL_SIZE - 10),
    y: pick(10, PNG_CELL_SIZE - 10),
    r: pick(5, 28),
    color: hslToRgb((hue + pick(60, 300)) % 360, pick(50, 90), pick(40, 70)),
  }));
  const size = PNG_CELL_SIZE;
  const pixels = new Uint8Array(size * size * CHANNELS);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const t = (x + y) / (2 * (size - 1));
      let rgb = mixRgb(from, to, t);
      for (const shape of shapes) if (covers(shape, x, y)) rgb = mixRgb(rgb, shape.color, 0.8);
      pixels.set(rgb, (y * size + x) * CHANNELS);
    }
  }
  return pixels;
}

function covers(shape: Shape, x: number, y: number): boolean {
  const dx = x - shape.x;
  const dy = y - shape.y;
  return shape.round
    ? dx * dx + dy * dy <= shape.r * shape.r
    : Math.abs(dx) <= shape.r && Math.abs(dy) <= shape.r;
}

/** `from` moved towards `to` by `amount` (0..1): gradients and alpha blending. */
function mixRgb(from: Rgb, to: Rgb, amount: number): Rgb {
  const channel = (a: number, b: number) => Math.round(a + (b - a) * amount);
  return [channel(from[0], to[0]), channel(from[1], to[1]), channel(from[2], to[2])];
}

function captionFor(prompt: string, cell: number): string {
  return `#${cell + 1} ${prompt}`;
}

/** One image (an upscale, or one cell of a grid). */
export function imagePng(seed: string, cell: number, prompt: string): Uint8Array {
  return encodePng(PNG_CELL_SIZE, PNG_CELL_SIZE, cellPixels(seed, cell), prompt && captionFor(prompt, cell));
}

/** The 2x2 grid: the same four pictures the per-image URLs serve. */
export function gridPng(seed: string, prompt: string): Uint8Array {
  const cellSize = PNG_CELL_SIZE;
  const size = cellSize * 2;
  const pixels = new Uint8Array(size * size * CHANNELS);
  for (let cell = 0; cell < 4; cell++) {
    const source = cellPixels(seed, cell);
    const left = (cell % 2) * cellSize;
    const top = Math.floor(cell / 2) * cellSize;
    for (let row = 0; row < cellSize; row++) {
      const line = source.subarray(row * cellSize * CHANNELS, (row + 1) * cellSize * CHANNELS);
      pixels.set(line, ((top + row) * size + left) * CHANNELS);
    }
  }
  return encodePng(size, size, pixels, prompt);
}

// ---------------------------------------------------------------------------
// Encoding

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = (CRC_TABLE[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function adler32(bytes: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (const byte of bytes) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

const MAX_STORED_BLOCK = 65_535;

/** A zlib stream of stored deflate blocks: valid, uncompressed, deterministic. */
function zlibStored(data: Uint8Array): Uint8Array {
  const blocks = Math.max(1, Math.ceil(data.length / MAX_STORED_BLOCK));
  const out = new Uint8Array(2 + data.length + blocks * 5 + 4);
  const view = new DataView(out.buffer);
  out.set([0x78, 0x01]);
  let at = 2;
  for (let block = 0; block < blocks; block++) {
    const part = data.subarray(block * MAX_STORED_BLOCK, (block + 1) * MAX_STORED_BLOCK);
    out[at] = block === blocks - 1 ? 1 : 0;
    view.setUint16(at + 1, part.length, true);
    view.setUint16(at + 3, ~part.length & 0xffff, true);
    out.set(part, at + 5);
    at += 5 + part.length;
  }
  view.setUint32(at, adler32(data));
  return out;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  const typeAndData = out.subarray(4, 8 + data.length);
  typeAndData.set(new TextEncoder().encode(type));
  typeAndData.set(data, 4);
  view.setUint32(8 + data.length, crc32(typeAndData));
  return out;
}

const SIGNATURE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** An 8-bit RGB PNG; `description` (UTF-8) goes in an iTXt chunk, as image tools write prompts. */
export function encodePng(width: number, height: number, rgb: Uint8Array, description: string): Uint8Array {
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit, truecolour, deflate, no filter method, no interlace
  const rowBytes = width * CHANNELS;
  const raw = new Uint8Array(height * (rowBytes + 1)); // each row: filter type 0, then its pixels
  for (let row = 0; row < height; row++) {
    raw.set(rgb.subarray(row * rowBytes, (row + 1) * rowBytes), row * (rowBytes + 1) + 1);
  }
  const parts = [SIGNATURE, chunk("IHDR", header)];
  if (description) parts.push(chunk("iTXt", new TextEncoder().encode(`Description\0\0\0\0\0${description}`)));
  parts.push(chunk("IDAT", zlibStored(raw)), chunk("IEND", new Uint8Array(0)));
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
