/**
 * The submit body of a task that waits in its upstream's queue: the request that admitted it
 * has long been answered when a slot frees, so the body is kept in the object's storage, cut
 * into chunks under SQLite's 2 MB row limit, and dropped once sent (or once the task gives up).
 */
import { hasTable, QUEUED_BODY_TABLE } from "./storage-schema";

/** Characters per row: at most 3 bytes each in UTF-8, so a chunk stays under 2 MB. */
const CHUNK_CHARS = 512 * 1024;

/**
 * The table exists only while a body is kept: few tasks ever wait, and dropping a table
 * that is not there writes nothing, so every submit's `drop` is free.
 */
export class QueuedBody {
  constructor(private readonly storage: DurableObjectStorage) {}

  private get sql(): SqlStorage {
    return this.storage.sql;
  }

  keep(body: string): void {
    this.drop();
    this.sql.exec(QUEUED_BODY_TABLE);
    for (let at = 0, seq = 0; at < body.length; at += CHUNK_CHARS, seq++) {
      this.sql.exec(
        "INSERT INTO queued_body (seq, chunk) VALUES (?1, ?2)",
        seq,
        body.slice(at, at + CHUNK_CHARS),
      );
    }
  }

  /** The kept body, or null when none is kept (sent already, or lost with a wiped storage). */
  read(): string | null {
    if (!hasTable(this.storage, "queued_body")) return null;
    const chunks = this.sql
      .exec<{ chunk: string }>("SELECT chunk FROM queued_body ORDER BY seq")
      .toArray()
      .map((row) => row.chunk);
    return chunks.length ? chunks.join("") : null;
  }

  drop(): void {
    this.sql.exec("DROP TABLE IF EXISTS queued_body");
  }
}
