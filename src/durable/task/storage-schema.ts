/**
 * The TaskObject's SQLite schema, versioned. Each migration runs once, in order, and the
 * applied version is remembered (in the object's synchronous key-value storage), so a
 * constructor reads one value instead of re-creating every table.
 *
 * Migration 1 is written with IF NOT EXISTS: objects created before versioning already
 * hold these tables and pass through it unharmed. Later migrations need no such care.
 * Append new migrations; never edit one that has shipped.
 */
const MIGRATIONS: ReadonlyArray<readonly string[]> = [
  [
    // The task's record (meta, state machine state, outcomes): one JSON row.
    "CREATE TABLE IF NOT EXISTS record (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL)",
    // The time (on the task's clock) the single alarm is armed for.
    "CREATE TABLE IF NOT EXISTS wake (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL)",
    // The event log SSE subscribers replay from (Last-Event-ID).
    "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, data TEXT NOT NULL)",
    // Webhook messages waiting to be fanned out to endpoints, then each pending delivery.
    "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, status TEXT NOT NULL, at INTEGER NOT NULL, payload TEXT NOT NULL)",
    `CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL,
      payload TEXT NOT NULL, attempts INTEGER NOT NULL, next_at INTEGER NOT NULL)`,
    // Set by the orphan sweep when it refunded a charge whose task never reached this object:
    // a start that arrives later must not forward (the money is already back).
    "CREATE TABLE IF NOT EXISTS tombstone (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL)",
  ],
  [
    // The submit body of a task waiting in its upstream's queue, in chunks under the row limit.
    "CREATE TABLE IF NOT EXISTS queued_body (seq INTEGER PRIMARY KEY, chunk TEXT NOT NULL)",
  ],
];

export const SCHEMA_VERSION = MIGRATIONS.length;
const VERSION_KEY = "schema_version";

/**
 * Brings the object's storage to the current schema; a no-op (one read) when it is there.
 * Also run after retention wiped the storage, so later calls find no task (404) instead of failing.
 */
export function migrate(storage: DurableObjectStorage): void {
  const applied = storage.kv.get<number>(VERSION_KEY) ?? 0;
  if (applied >= SCHEMA_VERSION) return;
  storage.transactionSync(() => {
    for (const migration of MIGRATIONS.slice(applied)) {
      for (const statement of migration) storage.sql.exec(statement);
    }
    storage.kv.put(VERSION_KEY, SCHEMA_VERSION);
  });
}
