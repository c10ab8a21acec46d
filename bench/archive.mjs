// How big the hot database gets, with and without the archive (issue 12, item 6). Runs alone:
// `npm run bench -- --only archive` (no Worker, no network): a SQLite file with every migration
// applied (D1 is SQLite; same tables, indexes and triggers), N settled tasks seeded with their
// ledger rows (a charge each, a refund for one in ten), its size read before and after
// (page_count × page_size); then the archive's own commit statements (src/db/archive.ts) run
// over every batch, and the size of what stays is read again after VACUUM. The R2 side is the
// gzip NDJSON the job writes (src/services/archive.ts encodeArchive), measured on the same rows.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { ROOT } from "../scripts/stack.mjs";
import { sqlite } from "./stacks.mjs";
import { round } from "./support.mjs";

const TEN_GB = 10e9;
const BATCH = 500; // ARCHIVE_BATCH_ITEMS in src/services/archive.ts
const DAY = 86_400_000;

const size = (file) => {
  const [{ bytes }] = sqlite(
    file,
    "SELECT (SELECT page_count FROM pragma_page_count()) * (SELECT page_size FROM pragma_page_size()) AS bytes;",
    { json: true },
  );
  return bytes;
};

/** N settled tasks of one tenant and key, spread over `days` days: tasks rows and their ledger rows. */
function seedTasks(file, n, days) {
  const start = Date.now() - 400 * DAY;
  const step = Math.max(1, Math.floor((days * DAY) / n));
  sqlite(
    file,
    `BEGIN;
     INSERT INTO tenants (id, name, balance, created_at) VALUES ('ten_bench_archive_000000000', 'bench', 1000000000000, 0);
     WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ${n})
     INSERT INTO tasks (id, tenant_id, key_id, action, upstream_task_id, status, cost, created_at, finished_at,
                        settled_at, upstream_cost, net_charge)
     SELECT 'task_' || upper(hex(randomblob(13))), 'ten_bench_archive_000000000', 'key_bench_archive_000000000', 'imagine',
            lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-' || hex(randomblob(2)) || '-' || hex(randomblob(2)) || '-' || hex(randomblob(6))),
            CASE WHEN i % 10 = 9 THEN 'FAILURE' ELSE 'SUCCESS' END, 66048,
            ${start} + i * ${step}, ${start} + i * ${step} + 40000, ${start} + i * ${step} + 40000,
            CASE WHEN i % 10 = 9 THEN NULL ELSE 55040 END, CASE WHEN i % 10 = 9 THEN 0 ELSE 66048 END
     FROM n;
     INSERT INTO ledger (tenant_id, key_id, task_id, kind, action, amount, balance_after, reason, step, created_at)
     SELECT tenant_id, key_id, id, 'charge', action, -66048, 999000000000, 'submit', 'submit', created_at
     FROM tasks WHERE tenant_id = 'ten_bench_archive_000000000' ORDER BY created_at;
     INSERT INTO ledger (tenant_id, key_id, task_id, kind, action, amount, balance_after, reason, ref_id, step, created_at)
     SELECT c.tenant_id, c.key_id, c.task_id, 'refund', c.action, 66048, 999000000000, 'failed', c.id, 'submit', k.settled_at
     FROM tasks k JOIN ledger c ON c.task_id = k.id AND c.kind = 'charge' WHERE k.status = 'FAILURE' ORDER BY k.created_at;
     COMMIT;`,
    { timeoutMs: 900_000 },
  );
}

/** The archive job's commit (src/db/archive.ts commitArchive) over every batch of BATCH tasks. */
function archiveAll(file, n) {
  const batches = [];
  for (let b = 0; b * BATCH < n; b++) {
    const tasks = `(SELECT id FROM tasks WHERE rowid > ${b * BATCH} AND rowid <= ${(b + 1) * BATCH})`;
    const rows = `(SELECT id FROM ledger WHERE task_id IN ${tasks})`;
    const key = `'ledger/ten_bench_archive_000000000/2025-01/l${String(b).padStart(15, "0")}.ndjson.gz'`;
    batches.push(`
      INSERT INTO archive_objects (object_key, tenant_id, month, ledger_rows, ledger_sum, task_rows, min_id, max_id,
                                   first_at, last_at, bytes, created_at)
      SELECT ${key}, 'ten_bench_archive_000000000', '2025-01', COUNT(*), SUM(amount), ${BATCH}, MIN(id), MAX(id),
             MIN(created_at), MAX(created_at), 30000, 0 FROM ledger WHERE id IN ${rows};
      INSERT INTO ledger_checkpoints (tenant_id, updated_at) VALUES ('ten_bench_archive_000000000', 0)
        ON CONFLICT (tenant_id) DO UPDATE SET updated_at = excluded.updated_at;
      INSERT INTO archive_usage (tenant_id, day, key_id, action, charged_micros, refunded_micros, charged_tasks, refunded_tasks)
      SELECT tenant_id, strftime('%Y-%m-%d', created_at / 1000, 'unixepoch'), COALESCE(key_id, ''), COALESCE(action, ''),
             SUM(CASE WHEN kind = 'charge' THEN -amount ELSE 0 END), SUM(CASE WHEN kind = 'refund' THEN amount ELSE 0 END),
             COUNT(CASE WHEN kind = 'charge' THEN 1 END), COUNT(CASE WHEN kind = 'refund' THEN 1 END)
      FROM ledger WHERE id IN ${rows} AND kind IN ('charge', 'refund') GROUP BY 1, 2, 3, 4
      ON CONFLICT (tenant_id, day, key_id, action) DO UPDATE SET
        charged_micros = charged_micros + excluded.charged_micros, refunded_micros = refunded_micros + excluded.refunded_micros,
        charged_tasks = charged_tasks + excluded.charged_tasks, refunded_tasks = refunded_tasks + excluded.refunded_tasks;
      DELETE FROM ledger WHERE id IN ${rows};
      DELETE FROM tasks WHERE id IN ${tasks};
      UPDATE archive_objects SET state = 'committed' WHERE object_key = ${key};`);
  }
  // rowids of the seeded tasks are 1..n (the only tasks in this file); deleting in rowid batches
  // keeps each statement's set the same as the job's (BATCH tasks and all their ledger rows).
  sqlite(file, `BEGIN;${batches.join("\n")}\nCOMMIT;`, { timeoutMs: 900_000 });
}

/** gzip NDJSON bytes per task, exactly as the job encodes an object, over one batch of rows. */
function r2BytesPerTask(file) {
  const tasks = sqlite(file, `SELECT * FROM tasks ORDER BY rowid LIMIT ${BATCH};`, { json: true });
  const ledger = sqlite(
    file,
    `SELECT * FROM ledger WHERE task_id IN (SELECT id FROM tasks ORDER BY rowid LIMIT ${BATCH}) ORDER BY id;`,
    { json: true },
  );
  const text = `${[
    ...ledger.map((row) => JSON.stringify({ record: "ledger", ...row })),
    ...tasks.map((row) => JSON.stringify({ record: "task", ...row })),
  ].join("\n")}\n`;
  return { ndjson: text.length / tasks.length, gzip: gzipSync(text).length / tasks.length };
}

export function archiveBench({ tasks = 20_000, afterDays = 90 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "mj-archive-bench-"));
  const file = join(dir, "d1.sqlite");
  try {
    const migrations = readdirSync(join(ROOT, "migrations"))
      .filter((name) => name.endsWith(".sql"))
      .sort();
    sqlite(file, migrations.map((name) => readFileSync(join(ROOT, "migrations", name), "utf8")).join("\n"));
    sqlite(file, "VACUUM;");
    const empty = size(file);
    seedTasks(file, tasks, 30);
    sqlite(file, "VACUUM;");
    const seeded = size(file);
    const r2 = r2BytesPerTask(file);
    archiveAll(file, tasks);
    sqlite(file, "VACUUM;");
    const archived = size(file);
    const [left] = sqlite(
      file,
      "SELECT (SELECT COUNT(*) FROM tasks) AS tasks, (SELECT COUNT(*) FROM ledger) AS ledger, (SELECT COUNT(*) FROM archive_objects) AS objects, (SELECT COUNT(*) FROM archive_usage) AS usage_rows;",
      { json: true },
    );
    const perTask = (seeded - empty) / tasks;
    const residuePerTask = (archived - empty) / tasks;
    const at = (perDay) => {
      const without = TEN_GB / (perTask * perDay);
      const hot = perTask * perDay * afterDays;
      const residuePerDay = residuePerTask * perDay;
      return {
        days_without_archive: round(without, 1),
        steady_hot_bytes_with_archive: Math.round(hot),
        residue_bytes_per_day: Math.round(residuePerDay),
        days_with_archive: hot >= TEN_GB ? 0 : round((TEN_GB - hot) / residuePerDay, 0),
        max_archive_after_days_for_10gb: Math.floor(TEN_GB / (perTask * perDay)),
        steady_hot_gb_by_archive_after_days: Object.fromEntries(
          [7, 30, 90].map((d) => [d, round((perTask * perDay * d) / 1e9, 2)]),
        ),
        r2_gb_per_year: round((r2.gzip * perDay * 365) / 1e9, 1),
      };
    };
    return {
      tasks,
      archive_after_days: afterDays,
      d1_bytes_per_task: round(perTask, 0),
      d1_residue_bytes_per_archived_task: round(residuePerTask, 1),
      r2_bytes_per_task: { ndjson: round(r2.ndjson, 0), gzip: round(r2.gzip, 0) },
      left_after_archive: left,
      at_100k_per_day: at(100_000),
      at_1m_per_day: at(1_000_000),
      note: "tasks rows + ledger rows (1.1 per task) + their indexes; idempotency keys, rate windows and webhook rows are purged by the cron and not counted",
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function archiveReport(a) {
  const line = (label, x) =>
    `  ${label}: without archive ${x.days_without_archive} days to 10 GB; with ARCHIVE_AFTER_DAYS=${a.archive_after_days} ` +
    `the hot set holds at ${round(x.steady_hot_bytes_with_archive / 1e9, 2)} GB` +
    (x.days_with_archive
      ? ` and what the archive leaves behind (${x.residue_bytes_per_day} B/day) reaches 10 GB in ${x.days_with_archive > 36_500 ? "over 100 years" : `${x.days_with_archive} days`}`
      : ` (over 10 GB: keep at most ${x.max_archive_after_days_for_10gb} days hot)`) +
    `; hot GB at 7 / 30 / 90 days kept: ${Object.values(x.steady_hot_gb_by_archive_after_days).join(" / ")}` +
    `; R2 grows ${x.r2_gb_per_year} GB/year`;
  return [
    `\nArchive (${a.tasks} settled tasks seeded into a migrated SQLite file)`,
    `  D1 bytes per task: ${a.d1_bytes_per_task}; left in D1 per archived task: ${a.d1_residue_bytes_per_archived_task} (checkpoint, object and day-usage rows); R2 per task: ${a.r2_bytes_per_task.gzip} B gzip NDJSON (${a.r2_bytes_per_task.ndjson} B plain)`,
    line("100 k tasks/day", a.at_100k_per_day),
    line("1 M tasks/day", a.at_1m_per_day),
  ].join("\n");
}
