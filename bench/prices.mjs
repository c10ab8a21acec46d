// Cloudflare list prices used for the infra cost per 1,000 tasks (bench/README.md "Cost").
// Source: Cloudflare's pricing pages as known on the "as of" date (developers.cloudflare.com
// /workers/platform/pricing/, /durable-objects/platform/pricing/, /d1/platform/pricing/,
// /r2/pricing/). Paid plans; the monthly allowances included in the $5 Workers Paid plan are
// NOT subtracted (marginal cost at volume). CHECK THEM against the pages before quoting a figure.
export const PRICES = {
  as_of: "2026-12 (from the pricing pages as last known; must be checked)",
  source:
    "https://developers.cloudflare.com/workers/platform/pricing/ (Workers, Durable Objects, D1, R2 sections)",
  usd: {
    workers_per_million_requests: 0.3,
    workers_per_million_cpu_ms: 0.02,
    durable_objects_per_million_requests: 0.15,
    /** Billed on 128 MB per active object, whatever it uses. */
    durable_objects_per_million_gb_s: 12.5,
    durable_object_gb: 0.128,
    /** SQLite-backed objects' own storage, billed per row like D1. */
    durable_objects_sqlite_per_million_rows_read: 0.001,
    durable_objects_sqlite_per_million_rows_written: 1.0,
    d1_per_million_rows_read: 0.001,
    d1_per_million_rows_written: 1.0,
    d1_per_gb_month: 0.75,
    r2_per_gb_month: 0.015,
    r2_per_million_class_a: 4.5,
    r2_per_million_class_b: 0.36,
  },
};

/**
 * Cost of 1,000 tasks from measured counts per task. `perTask`: workerRequests, cpuMs,
 * objectRequests, objectActiveSeconds, objectRowsRead, objectRowsWritten (the objects' own
 * SQLite), d1RowsRead, d1RowsWritten, d1Bytes (kept for `storageMonths`). Returns one line per item and the total, in USD.
 */
export function costPer1000Tasks(perTask, { storageMonths = 1 } = {}) {
  const p = PRICES.usd;
  const n = 1000;
  const lines = {
    workers_requests: (perTask.workerRequests * n * p.workers_per_million_requests) / 1e6,
    workers_cpu: (perTask.cpuMs * n * p.workers_per_million_cpu_ms) / 1e6,
    durable_object_requests: (perTask.objectRequests * n * p.durable_objects_per_million_requests) / 1e6,
    durable_object_duration:
      (perTask.objectActiveSeconds * p.durable_object_gb * n * p.durable_objects_per_million_gb_s) / 1e6,
    durable_object_rows_read:
      ((perTask.objectRowsRead ?? 0) * n * p.durable_objects_sqlite_per_million_rows_read) / 1e6,
    durable_object_rows_written:
      ((perTask.objectRowsWritten ?? 0) * n * p.durable_objects_sqlite_per_million_rows_written) / 1e6,
    d1_rows_read: (perTask.d1RowsRead * n * p.d1_per_million_rows_read) / 1e6,
    d1_rows_written: (perTask.d1RowsWritten * n * p.d1_per_million_rows_written) / 1e6,
    d1_storage: ((perTask.d1Bytes * n) / 1e9) * p.d1_per_gb_month * storageMonths,
    r2: 0, // no archive yet: nothing goes to R2
  };
  const total = Object.values(lines).reduce((a, b) => a + b, 0);
  return { lines, total };
}
