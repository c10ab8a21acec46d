/**
 * Development only, for the benchmarks: the rows a Durable Object's own SQLite storage read
 * and wrote (Cloudflare bills them per million, like D1's), summed per class in this isolate.
 * It replaces the object's `sql.exec` with one that remembers each cursor and adds its row
 * counts once the cursor is done with: at the object's next statement, or when the totals are
 * read. The synchronous key-value API counts as Cloudflare bills it: a row read per key read,
 * a row written per key written or deleted. Outside development nothing is wrapped. Alarms are
 * not counted.
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
  countKeyValueRows(storage.kv, usage);
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

function countKeyValueRows(kv: DurableObjectStorage["kv"], usage: StorageRows): void {
  const count = (name: "get" | "put" | "delete", field: keyof StorageRows) => {
    const original = (kv[name] as (...args: unknown[]) => unknown).bind(kv);
    Object.defineProperty(kv, name, {
      configurable: true,
      value: (...args: unknown[]) => {
        usage[field]++;
        return original(...args);
      },
    });
  };
  count("get", "rowsRead");
  count("put", "rowsWritten");
  count("delete", "rowsWritten");
}
