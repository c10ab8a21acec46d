/**
 * The benchmarks' count of a Durable Object's own SQLite rows (development only): every
 * statement's rows read and written reach its class's totals, the last one once settled.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { countStorageRows, settleStorageRows } from "../../src/durable/storage-row-counter";

describe("countStorageRows", () => {
  it("adds each statement's rows read and written, the last one when settled", async () => {
    const stub = env.TENANT_HUB.get(env.TENANT_HUB.idFromName(`rows-${crypto.randomUUID()}`));
    await runInDurableObject(stub, (_instance, state) => {
      const usage = { rowsRead: 0, rowsWritten: 0 };
      countStorageRows(state.storage, usage);
      const sql = state.storage.sql;
      sql.exec("CREATE TABLE counted (n INTEGER)");
      settleStorageRows();
      const afterSchema = usage.rowsWritten;
      sql.exec("INSERT INTO counted (n) VALUES (1), (2), (3)");
      // A statement's rows are added when the next one begins (or when settled).
      expect(usage.rowsWritten).toBe(afterSchema);
      expect(sql.exec("SELECT n FROM counted ORDER BY n").toArray()).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
      expect(usage.rowsWritten).toBe(afterSchema + 3);
      const readBefore = usage.rowsRead;
      settleStorageRows();
      expect(usage.rowsRead).toBeGreaterThanOrEqual(readBefore + 3); // a sort may read a row twice
      sql.exec("UPDATE counted SET n = n + 1 WHERE n >= 2");
      settleStorageRows();
      expect(usage.rowsWritten).toBe(afterSchema + 5);
    });
  });

  it("counts the key-value API as billed: a row read per key read, a row written per key written or deleted", async () => {
    const stub = env.TENANT_HUB.get(env.TENANT_HUB.idFromName(`rows-kv-${crypto.randomUUID()}`));
    await runInDurableObject(stub, (_instance, state) => {
      const usage = { rowsRead: 0, rowsWritten: 0 };
      countStorageRows(state.storage, usage);
      state.storage.kv.put("a", 1);
      state.storage.kv.put("b", 2);
      expect(state.storage.kv.get("a")).toBe(1);
      state.storage.kv.delete("b");
      expect(usage).toEqual({ rowsRead: 1, rowsWritten: 3 });
    });
  });
});
