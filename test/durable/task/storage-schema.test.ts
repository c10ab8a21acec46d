import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { migrate, SCHEMA_VERSION } from "../../../src/durable/task/storage-schema";
import type { TaskObject } from "../../../src/durable/task-object";

const freshStub = () => env.TASKS.get(env.TASKS.idFromName(`schema-${crypto.randomUUID()}`));

const tables = (storage: DurableObjectStorage) =>
  storage.sql
    .exec<{ name: string }>(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .toArray()
    .map((t) => t.name);

describe("task storage schema", () => {
  it("a new object is at the current version with every table", async () => {
    await runInDurableObject(freshStub(), (_o: TaskObject, state) => {
      expect(state.storage.kv.get("schema_version")).toBe(SCHEMA_VERSION);
      expect(tables(state.storage)).toEqual([
        "deliveries",
        "events",
        "outbox",
        "queued_body",
        "record",
        "tombstone",
        "wake",
      ]);
    });
  });

  it("migrating again changes nothing; an object from before versioning keeps its data", async () => {
    await runInDurableObject(freshStub(), (_o: TaskObject, state) => {
      state.storage.sql.exec("INSERT INTO record (id, body) VALUES (1, '{}')");
      migrate(state.storage);
      // As if written before the schema had a version: the tables are there, the version is not.
      state.storage.kv.delete("schema_version");
      migrate(state.storage);
      expect(state.storage.kv.get("schema_version")).toBe(SCHEMA_VERSION);
      expect(state.storage.sql.exec("SELECT body FROM record").toArray()).toEqual([{ body: "{}" }]);
    });
  });

  it("after a wipe (retention), migrating restores empty tables", async () => {
    await runInDurableObject(freshStub(), async (_o: TaskObject, state) => {
      await state.storage.deleteAll();
      expect(tables(state.storage)).toEqual([]);
      migrate(state.storage);
      expect(tables(state.storage)).toHaveLength(7);
      expect(state.storage.sql.exec("SELECT * FROM record").toArray()).toEqual([]);
    });
  });
});
