/** Task ids (task_ + ULID), job hashes, a small deterministic string hash and PRNG. */

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

export const TASK_ID_PATTERN = /^task_[0-9A-HJKMNP-TV-Z]{26}$/;

/** 26-char ULID: 10 chars of millisecond time, then 16 chars (80 bits) of randomness. */
export function ulid(nowMs: number): string {
  let time = "";
  let rest = Math.max(0, Math.floor(nowMs));
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[rest % 32] + time;
    rest = Math.floor(rest / 32);
  }
  const random = crypto.getRandomValues(new Uint8Array(16));
  let tail = "";
  for (const byte of random) tail += CROCKFORD[byte % 32];
  return time + tail;
}

export function newTaskId(nowMs: number): string {
  return `task_${ulid(nowMs)}`;
}

/** MJ job hashes are UUIDs; the store keeps hash -> task id so customIds resolve. */
export function newJobHash(): string {
  return crypto.randomUUID();
}

const UUID_PATTERN = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

export function findJobHash(customId: string): string | null {
  return UUID_PATTERN.exec(customId)?.[0].toLowerCase() ?? null;
}

/** FNV-1a (32 bit): stable across runs, so a prompt always draws the same picture. */
export function hashString(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** mulberry32: tiny deterministic PRNG seeded from the hash. */
export function randomSource(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
