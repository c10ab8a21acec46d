/**
 * Video files for the CDN routes: an MP4 `ftyp` box, then one `mdat` box of
 * pseudo-random bytes filling the file to the requested size. Not playable,
 * but real-looking bytes of any size, for copying, streaming and seeking.
 * Every byte is a pure function of (seed, offset), so any range can be made
 * on its own and a multi-MiB file never sits in memory whole.
 */

import { hashString } from "./ids";

export const DEFAULT_VIDEO_BYTES = 256 * 1024;
/** ftyp + mdat header, and a few payload bytes. */
export const MIN_VIDEO_BYTES = 64;
export const MAX_VIDEO_BYTES = 256 * 1024 * 1024;

// ftyp: major brand isom, minor version 0x200, compatible isom iso2 avc1 mp41 (what ffmpeg writes).
const FTYP = boxHeader(32, "ftyp");
const FTYP_BODY = new TextEncoder().encode("isom\0\0\u0002\0isomiso2avc1mp41");
const HEADER_BYTES = 40;

function boxHeader(size: number, type: string): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setUint32(0, size);
  out.set(new TextEncoder().encode(type), 4);
  return out;
}

function fileHeader(size: number): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES);
  out.set(FTYP, 0);
  out.set(FTYP_BODY, 8);
  out.set(boxHeader(size - 32, "mdat"), 32);
  return out;
}

/** A 32-bit mix (murmur3's finaliser): neighbouring words look unrelated. */
function mix(value: number): number {
  let h = value >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export interface VideoFile {
  size: number;
  /** Bytes [start, end) of the file. */
  read(start: number, end: number): Uint8Array;
}

export function videoFile(seed: string, size: number): VideoFile {
  const seedHash = hashString(seed);
  const header = fileHeader(size);
  return {
    size,
    read(start, end) {
      const out = new Uint8Array(end - start);
      let wordIndex = -1;
      let word = 0;
      for (let offset = start; offset < end; offset++) {
        if (offset < HEADER_BYTES) {
          out[offset - start] = header[offset] as number;
          continue;
        }
        // Each 32-bit word of payload serves four bytes: mix once per word.
        if (offset >>> 2 !== wordIndex) {
          wordIndex = offset >>> 2;
          word = mix(seedHash ^ Math.imul(wordIndex, 0x9e3779b9));
        }
        out[offset - start] = (word >>> ((offset & 3) * 8)) & 0xff;
      }
      return out;
    },
  };
}
