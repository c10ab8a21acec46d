/**
 * Development only, for the benchmarks: the rows a Durable Object's own SQLite storage read
 * and wrote (Cloudflare bills them per million, like D1's), summed per class in this isolate.
 * It replaces the object's `sql.exec` with one that remembers each cursor and adds its row
 * counts once the cursor is done with: at the object's next statement, or when the totals are
 * read. Outside development nothing is wrapped. The key-value API and alarms are not counted.
 */
export interface StorageRows {
  rowsRead: number;
  rowsWritten: number;
}

const pending = new Set<() => void>();

export function countStorageRows(storage: DurableObjectStorage, usage: StorageRows): void {
  const sql = storage.sql;
  const exec = sql.exec.bind(sql);
  let last: SqlStorageCursor<Record<string, SqlStorageValue>> | null = null;
  const fold = () => {
    if (last) {
      usage.rowsRead += last.rowsRead;
      usage.rowsWritten += last.rowsWritten;
      last = null;
    }
    pending.delete(fold);
  };
  Object.defineProperty(sql, "exec", {
    configurable: true,
    value: (query: string, ...bindings: unknown[]) => {
      fold();
      last = exec(query, ...bindings);
      pending.add(fold);
      return last;
    },
  });
}

/** Adds every cursor still open to its class's totals (call before reading them). */
export function settleStorageRows(): void {
  for (const fold of [...pending]) fold();
}
