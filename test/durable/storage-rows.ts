/** Counting an object's own storage rows in a test (the bench's counter, src/durable/storage-row-counter.ts). */
import { countStorageRows, type StorageRows, settleStorageRows } from "../../src/durable/storage-row-counter";

/** Counts the storage's rows from now on; each reading first adds the statements still open. */
export function rowsCounted(storage: DurableObjectStorage): () => StorageRows {
  const rows = { rowsRead: 0, rowsWritten: 0 };
  countStorageRows(storage, rows);
  return () => {
    settleStorageRows();
    return { ...rows };
  };
}
