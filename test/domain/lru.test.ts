/** The bounded LRU behind the key cache and the auth throttle. */
import { describe, expect, it } from "vitest";
import { Lru } from "../../src/domain/lru";

describe("Lru", () => {
  it("evicts only the least recently used entry when full, never everything", () => {
    const lru = new Lru<number>(3);
    lru.set("a", 1);
    lru.set("b", 2);
    lru.set("c", 3);
    expect(lru.get("a")).toBe(1); // a is now the newest
    lru.set("d", 4);
    expect(lru.size).toBe(3);
    expect(lru.peek("b")).toBeUndefined();
    expect([lru.peek("a"), lru.peek("c"), lru.peek("d")]).toEqual([1, 3, 4]);
    for (let i = 0; i < 100; i++) lru.set(`x${i}`, i);
    expect(lru.size).toBe(3);
    expect([lru.peek("x97"), lru.peek("x98"), lru.peek("x99")]).toEqual([97, 98, 99]);
  });

  it("re-setting a key refreshes it without growing; peek does not refresh", () => {
    const lru = new Lru<string>(2);
    lru.set("a", "1");
    lru.set("b", "2");
    lru.set("a", "3");
    expect(lru.size).toBe(2);
    lru.set("c", "4");
    expect(lru.peek("b")).toBeUndefined();
    expect(lru.peek("a")).toBe("3");
    lru.peek("a");
    lru.set("d", "5");
    expect(lru.peek("a")).toBeUndefined();
    expect(lru.delete("c")).toBe(true);
    expect(lru.size).toBe(1);
  });

  it("needs a positive capacity", () => {
    expect(() => new Lru(0)).toThrow();
  });
});
