/**
 * The task object's schema: written when a task is recorded, never by an object nobody
 * created (a query for an unknown id must leave no storage behind); older objects migrate
 * step by step and keep their data; a wiped object is blank again.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { newTaskId } from "../../../src/domain/ids";
import {
  MIGRATIONS,
  SCHEMA_VERSION,
  TaskSchema,
  TOMBSTONE_KEY,
  versionOf,
} from "../../../src/durable/task/storage-schema";
import type { TaskObject } from "../../../src/durable/task-object";
import { call, tenantWithKey } from "../../helpers";
import { marker } from "../../routes/route-helpers";

const stubOf = (name: string) => env.TASKS.get(env.TASKS.idFromName(name));
const freshStub = () => stubOf(`schema-${crypto.randomUUID()}`);

const tables = (storage: DurableObjectStorage) =>
  storage.sql
    .exec<{ name: string }>(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .toArray()
    .map((t) => t.name);

/** Whether the runtime made the key-value storage's table (it does on the first write of a key). */
const hasKeyValueTable = (storage: DurableObjectStorage) =>
  storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = '_cf_KV'").toArray().length > 0;

/** Nothing stored at all: no table, no key, no alarm. */
async function blank(storage: DurableObjectStorage) {
  return (
    tables(storage).length === 0 && [...storage.kv.list()].length === 0 && (await storage.getAlarm()) === null
  );
}

describe("task storage schema", () => {
  it("an object nobody created stays blank when asked about its task, over HTTP and RPC", async () => {
    const t = await tenantWithKey();
    const unknown = newTaskId();
    expect((await call("GET", `/v1/midjourney/${unknown}`, { key: t.key })).status).toBe(404);
    expect((await call("GET", `/v1/midjourney/${unknown}/events`, { key: t.key })).status).toBe(404);
    expect(await stubOf(unknown).view(t.tenantId)).toBeNull();
    expect(await stubOf(unknown).custody()).toEqual({
      recorded: false,
      upstreamConfirmed: false,
      status: null,
    });
    await runInDurableObject(stubOf(unknown), async (_o: TaskObject, state) => {
      expect(await blank(state.storage)).toBe(true);
    });
  });

  it("a recorded task's object holds its record and event log, the current version marked in them, nothing more", async () => {
    const t = await tenantWithKey();
    const res = await call("POST", "/v1/midjourney/generations/imagine", {
      key: t.key,
      body: { prompt: marker("schema") },
    });
    expect(res.status).toBe(200);
    const taskId = res.body.data[0].task_id as string;
    await runInDurableObject(stubOf(taskId), (_o: TaskObject, state) => {
      expect(versionOf(state.storage)).toBe(SCHEMA_VERSION);
      // No key for the version: a key would make the key-value storage's table, per task.
      expect([...state.storage.kv.list()]).toEqual([]);
      expect(hasKeyValueTable(state.storage)).toBe(false);
      expect(tables(state.storage)).toEqual(["events", "record"]);
      expect(state.storage.sql.exec("SELECT COUNT(*) AS n FROM events").one().n).toBeGreaterThan(0);
    });
  });

  it("an object of version 2 migrates: its data kept, its tombstone moved to a key, the alarm's row gone", async () => {
    await runInDurableObject(freshStub(), (_o: TaskObject, state) => {
      const { storage } = state;
      for (const migration of MIGRATIONS.slice(0, 2)) migration(storage);
      storage.kv.put("schema_version", 2);
      storage.sql.exec("INSERT INTO record (id, body) VALUES (1, '{}')");
      storage.sql.exec("INSERT INTO tombstone (id, at) VALUES (1, 1234)");
      storage.sql.exec("INSERT INTO wake (id, at) VALUES (1, 5678)");

      const schema = new TaskSchema(storage);
      expect(schema.exists).toBe(true);
      expect(storage.kv.get("schema_version")).toBe(SCHEMA_VERSION);
      expect(storage.kv.get(TOMBSTONE_KEY)).toBe(1234);
      expect(tables(storage)).toEqual(["deliveries", "events", "outbox", "queued_body", "record"]);
      expect(storage.sql.exec("SELECT body FROM record").toArray()).toEqual([{ body: "{}" }]);
      // Opening it again changes nothing.
      expect(new TaskSchema(storage).exists).toBe(true);
      expect(tables(storage)).toHaveLength(5);
    });
  });

  it("an object whose record table marks an older version migrates from that version", async () => {
    await runInDurableObject(freshStub(), (_o: TaskObject, state) => {
      const { storage } = state;
      storage.sql.exec(
        "CREATE TABLE record (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL /* schema version 2 */)",
      );
      for (const migration of MIGRATIONS.slice(0, 2)) migration(storage);
      storage.sql.exec("INSERT INTO record (id, body) VALUES (1, '{}')");
      storage.sql.exec("INSERT INTO tombstone (id, at) VALUES (1, 1234)");
      expect(versionOf(storage)).toBe(2);

      expect(new TaskSchema(storage).exists).toBe(true);
      expect(versionOf(storage)).toBe(SCHEMA_VERSION);
      expect(storage.kv.get(TOMBSTONE_KEY)).toBe(1234);
      expect(tables(storage)).toEqual(["deliveries", "events", "outbox", "queued_body", "record"]);
      expect(storage.sql.exec("SELECT body FROM record").toArray()).toEqual([{ body: "{}" }]);
    });
  });

  it("an object from before versioning (tables, no version) migrates and keeps its data", async () => {
    await runInDurableObject(freshStub(), (_o: TaskObject, state) => {
      const { storage } = state;
      MIGRATIONS[0]!(storage);
      storage.sql.exec("INSERT INTO record (id, body) VALUES (1, '{}')");
      expect(new TaskSchema(storage).exists).toBe(true);
      expect(storage.kv.get("schema_version")).toBe(SCHEMA_VERSION);
      expect(storage.kv.get(TOMBSTONE_KEY)).toBeUndefined();
      expect(storage.sql.exec("SELECT body FROM record").toArray()).toEqual([{ body: "{}" }]);
    });
  });

  it("a blank object gets its schema on ensure, once; after a wipe it is blank again", async () => {
    await runInDurableObject(freshStub(), async (_o: TaskObject, state) => {
      const { storage } = state;
      const schema = new TaskSchema(storage);
      expect(schema.exists).toBe(false);
      expect(await blank(storage)).toBe(true);
      schema.ensure();
      schema.ensure();
      expect(schema.exists).toBe(true);
      expect(tables(storage)).toEqual(["events", "record"]);
      // Opened again (a new instance), it is at the current version and writes nothing.
      expect(new TaskSchema(storage).exists).toBe(true);
      expect(versionOf(storage)).toBe(SCHEMA_VERSION);
      expect(hasKeyValueTable(storage)).toBe(false);
      await storage.deleteAll();
      schema.wiped();
      expect(schema.exists).toBe(false);
      expect(new TaskSchema(storage).exists).toBe(false);
      expect(await blank(storage)).toBe(true);
    });
  });
});
