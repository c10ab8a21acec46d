import { Lru } from "../domain/lru";

/**
 * An abuse shield: "more than `limit` hits per key in `periodSeconds`". It counts with a
 * Workers rate-limiting binding when one is bound (wrangler.toml `[[ratelimits]]` with the
 * same limit and period): per location and approximate, which is all a shield needs and
 * costs no D1 write. Without the binding, a bounded per-isolate counter does the same job on
 * each isolate. Money limits never use this: they are exact, in D1.
 */
export class AbuseShield {
  readonly #counts: Lru<{ windowStart: number; count: number }>;

  constructor(
    readonly limit: number,
    readonly periodSeconds: number,
    capacity = 10_000,
  ) {
    this.#counts = new Lru(capacity);
  }

  /** Counts one hit for `key`; true when it is over the limit. */
  async over(binding: RateLimit | undefined, key: string, now = Date.now()): Promise<boolean> {
    if (binding) return !(await binding.limit({ key })).success;
    const periodMs = this.periodSeconds * 1000;
    const entry = this.#counts.get(key);
    const current = entry && now - entry.windowStart < periodMs ? entry : { windowStart: now, count: 0 };
    current.count++;
    this.#counts.set(key, current);
    return current.count > this.limit;
  }

  /** Seconds until the window of `key` ends (the period when unknown, as with the binding). */
  retryAfterSeconds(key: string, now = Date.now()): number {
    const entry = this.#counts.peek(key);
    if (!entry) return this.periodSeconds;
    return Math.max(1, Math.ceil((entry.windowStart + this.periodSeconds * 1000 - now) / 1000));
  }

  forget(): void {
    this.#counts.clear();
  }
}
