/**
 * A bounded least-recently-used map: a Map kept in use order (oldest first). Reading an
 * entry makes it the newest; adding one to a full map evicts only the oldest entry, never
 * everything at once.
 */
export class Lru<V> {
  readonly #entries = new Map<string, V>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error("an LRU needs a capacity of 1 or more");
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string): V | undefined {
    if (!this.#entries.has(key)) return undefined;
    const value = this.#entries.get(key)!;
    this.#entries.delete(key);
    this.#entries.set(key, value);
    return value;
  }

  /** Like get, but leaves the order as it is. */
  peek(key: string): V | undefined {
    return this.#entries.get(key);
  }

  set(key: string, value: V): void {
    this.#entries.delete(key);
    while (this.#entries.size >= this.capacity) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, value);
  }

  delete(key: string): boolean {
    return this.#entries.delete(key);
  }

  /** Empties the map: for explicit invalidation (a key changed), never to make room. */
  clear(): void {
    this.#entries.clear();
  }
}
