/**
 * The TaskObject's SQLite schema, versioned, and created only when a task is.
 *
 * A task id nobody created (a query for a random id, a late read after retention) reaches a
 * blank object: it must cost no stored row and leave no storage behind, so an object writes
 * its schema when its first task is recorded (`TaskSchema.ensure`), not in its constructor.
 * A new object gets `CURRENT` (the tables every task uses); the tables few tasks use are
 * created by their owners on first use (`webhook-outbox.ts`, `queued-body.ts`).
 *
 * Objects written before this version are brought up to it step by step (`MIGRATIONS`, in
 * order). Append new migrations; never edit one that has shipped. Migration 3 is one way: code
 * from before it cannot run on storage it wrote (no rollback past it; README, Deploy).
 *
 * Where an object's version is kept (`versionOf`): a new object's `record` table carries it in
 * its CREATE statement (`VERSION_MARK`, read back from sqlite_master), so creating a task writes
 * no key: the key-value storage's table is made by its first write, a table and a row per task
 * for one number. Objects that migrated, or were created before the mark, keep it in the
 * key-value storage (`VERSION_KEY`), which wins. A `record` table with neither is from before
 * versioning (version 0).
 */

/** Webhook messages waiting to be fanned out, then each pending delivery (tenants with endpoints). */
const WEBHOOK_TABLES: readonly string[] = [
  "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, status TEXT NOT NULL, at INTEGER NOT NULL, payload TEXT NOT NULL)",
  `CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL,
    payload TEXT NOT NULL, attempts INTEGER NOT NULL, next_at INTEGER NOT NULL)`,
];

/** The submit body of a task waiting in its upstream's queue, made while one is kept (`queued-body.ts`). */
export const QUEUED_BODY_TABLE = "CREATE TABLE queued_body (seq INTEGER PRIMARY KEY, chunk TEXT NOT NULL)";

export type Migration = (storage: DurableObjectStorage) => void;

const statements =
  (...sql: string[]): Migration =>
  (storage) => {
    for (const statement of sql) storage.sql.exec(statement);
  };

/** Where the orphan sweep's tombstone is kept (see `TaskLifecycle.tombstone`). */
export const TOMBSTONE_KEY = "tombstoned_at";

export const MIGRATIONS: readonly Migration[] = [
  // 1. Written with IF NOT EXISTS: objects created before versioning pass through unharmed.
  statements(
    "CREATE TABLE IF NOT EXISTS record (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS wake (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, data TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, status TEXT NOT NULL, at INTEGER NOT NULL, payload TEXT NOT NULL)",
    `CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL,
      payload TEXT NOT NULL, attempts INTEGER NOT NULL, next_at INTEGER NOT NULL)`,
    "CREATE TABLE IF NOT EXISTS tombstone (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL)",
  ),
  // 2. The submit body of a task waiting in its upstream's queue.
  statements("CREATE TABLE IF NOT EXISTS queued_body (seq INTEGER PRIMARY KEY, chunk TEXT NOT NULL)"),
  // 3. The alarm's time is the runtime's alarm itself (no row per arm); the tombstone is one key.
  // Guarded although migration 1 made both tables: a throw here would break the object for good.
  (storage) => {
    const tombstone = hasTable(storage, "tombstone")
      ? storage.sql.exec<{ at: number }>("SELECT at FROM tombstone").toArray()[0]
      : undefined;
    if (tombstone) storage.kv.put(TOMBSTONE_KEY, tombstone.at);
    storage.sql.exec("DROP TABLE IF EXISTS tombstone");
    storage.sql.exec("DROP TABLE IF EXISTS wake");
  },
  // A migration 4 meets two shapes: objects from before 3 hold outbox, deliveries and
  // queued_body; objects created at 3 hold them only once used. Guard accordingly.
];

export const SCHEMA_VERSION = MIGRATIONS.length;
const VERSION_KEY = "schema_version";

/** How a new object's `record` table names the version it was created at (`versionOf`). */
const VERSION_MARK = /\/\* schema version (\d+) \*\//;

/** A task's record (meta, state machine state, outcomes) and its event log, for a new object. */
const CURRENT: readonly string[] = [
  `CREATE TABLE record (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL /* schema version ${SCHEMA_VERSION} */)`,
  // Rows are never deleted one by one (only with the whole storage), so the rowid grows like
  // AUTOINCREMENT's without its sqlite_sequence row written on every insert.
  "CREATE TABLE events (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, data TEXT NOT NULL)",
];

export class TaskSchema {
  private ready: boolean;
  /** This instance made sure the webhook tables exist (until the storage is wiped). */
  private webhookTablesMade = false;

  /** Brings an existing object's storage to the current version; a blank object stays blank. */
  constructor(private readonly storage: DurableObjectStorage) {
    this.ready = open(storage);
  }

  /** Whether the object holds a schema (a blank one holds no task). */
  get exists(): boolean {
    return this.ready;
  }

  /** Before a task's first write: the current schema, its version marked in it (one step). */
  ensure(): void {
    if (this.ready) return;
    this.storage.transactionSync(() => {
      for (const statement of CURRENT) this.storage.sql.exec(statement);
    });
    this.ready = true;
  }

  /** Before the webhook outbox's first use in this instance. */
  ensureWebhookTables(): void {
    if (this.webhookTablesMade) return;
    for (const statement of WEBHOOK_TABLES) this.storage.sql.exec(statement);
    this.webhookTablesMade = true;
  }

  /** Retention wiped the storage: the object is blank again, its tables gone. */
  wiped(): void {
    this.ready = false;
    this.webhookTablesMade = false;
  }
}

/** True when the object holds a schema (now at the current version). */
function open(storage: DurableObjectStorage): boolean {
  const applied = versionOf(storage);
  if (applied === null) return false;
  if (applied >= SCHEMA_VERSION) return true;
  storage.transactionSync(() => {
    for (const migration of MIGRATIONS.slice(applied)) migration(storage);
    storage.kv.put(VERSION_KEY, SCHEMA_VERSION);
  });
  return true;
}

/** The version an object's storage is at; null for a blank object (no `record` table). */
export function versionOf(storage: DurableObjectStorage): number | null {
  const kept = storage.kv.get<number>(VERSION_KEY);
  if (kept !== undefined) return kept;
  const record = storage.sql
    .exec<{ sql: string }>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'record'")
    .toArray()[0];
  if (!record) return null;
  const mark = VERSION_MARK.exec(record.sql);
  return mark ? Number(mark[1]) : 0;
}

export function hasTable(storage: DurableObjectStorage, name: string): boolean {
  return (
    storage.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", name).toArray()
      .length > 0
  );
}
