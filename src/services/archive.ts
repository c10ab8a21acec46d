/**
 * History leaves the hot database (issue 12, item 6). The cron moves settled tasks and their
 * ledger rows older than ARCHIVE_AFTER_DAYS into R2, in bounded batches, each in this order:
 *
 *   1. plan: a tenant's oldest settled tasks (with all their ledger rows) and credits of one month;
 *   2. put the batch as one gzip NDJSON object under a key derived from its content, and read it
 *      back to verify it;
 *   3. one D1 batch: record the object, delete exactly its rows (triggers move their amounts
 *      into the tenant's checkpoint), mark it committed (a CHECK holds the deleted rows and sum
 *      to the object's).
 *
 * A run that dies between 2 and 3 leaves an object nobody lists (readers go through D1's
 * archive_objects); the next run plans the same batch, overwrites the same key and commits.
 * Format (one JSON object a line): `{"record":"ledger",…every ledger column}` and
 * `{"record":"task",…every tasks column}`, money in integer micro-USD.
 */
import {
  type ArchivedTask,
  type ArchivePlan,
  archiveObjectsFor,
  commitArchive,
  nextArchivePlan,
  tenantIdsAfter,
} from "../db/archive";
import type { LedgerEntry, LedgerFilter } from "../db/ledger-reads";
import { ApiError } from "../domain/errors";
import { configFrom, type Env } from "../env";
import { logEvent } from "../log";

/** Tasks (and credits) per object: ~2–3 ledger rows each, a few hundred KiB before gzip. */
export const ARCHIVE_BATCH_ITEMS = 500;
/** Batches per cron run: each is ~4 D1 round trips and 2 R2 operations. */
export const ARCHIVE_BATCHES_PER_RUN = 40;
const TENANT_PAGE = 100;
/**
 * Objects one ledger read may open. A page stops as soon as it has its rows, so only a sparse
 * filter (a task, a key, an action) over a long archived range reaches this: it is refused
 * with a 400 naming `from` rather than left to run into the Worker's subrequest limit.
 */
export const MAX_ARCHIVE_OBJECTS_PER_READ = 200;

type ArchiveEnv = Pick<Env, "DB" | "ARCHIVE_BUCKET">;

export interface ArchiveContents {
  ledger: LedgerEntry[];
  tasks: ArchivedTask[];
}

async function gzip(text: string): Promise<Uint8Array> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function gunzip(body: ReadableStream): Promise<string> {
  return new Response(body.pipeThrough(new DecompressionStream("gzip"))).text();
}

export function encodeArchive(contents: ArchiveContents): string {
  const lines = [
    ...contents.ledger.map((row) => JSON.stringify({ record: "ledger", ...row })),
    ...contents.tasks.map((row) => JSON.stringify({ record: "task", ...row })),
  ];
  return `${lines.join("\n")}\n`;
}

/** An archive object's rows; null when the key holds nothing. */
export async function readArchiveObject(bucket: R2Bucket, key: string): Promise<ArchiveContents | null> {
  const object = await bucket.get(key);
  if (!object) return null;
  const contents: ArchiveContents = { ledger: [], tasks: [] };
  for (const line of (await gunzip(object.body)).split("\n")) {
    if (!line) continue;
    const { record, ...row } = JSON.parse(line) as { record: string } & Record<string, unknown>;
    if (record === "ledger") contents.ledger.push(row as unknown as LedgerEntry);
    else if (record === "task") contents.tasks.push(row as ArchivedTask);
  }
  return contents;
}

/** Step 2: puts the batch's object and reads it back; throws unless it holds exactly the plan's rows. */
export async function writeArchiveObject(bucket: R2Bucket, plan: ArchivePlan): Promise<number> {
  const body = await gzip(encodeArchive(plan));
  await bucket.put(plan.key, body, {
    httpMetadata: { contentType: "application/gzip" },
    customMetadata: {
      format: "ndjson",
      tenant_id: plan.tenantId,
      month: plan.month,
      ledger_rows: String(plan.ledger.length),
      task_rows: String(plan.tasks.length),
    },
  });
  const back = await readArchiveObject(bucket, plan.key);
  const ids = (rows: { id: unknown }[]) => rows.map((r) => r.id).join(",");
  if (!back || ids(back.ledger) !== ids(plan.ledger) || ids(back.tasks) !== ids(plan.tasks)) {
    throw new Error(`archive object ${plan.key} did not read back as written`);
  }
  return body.byteLength;
}

export interface ArchiveRun {
  objects: number;
  ledgerRows: number;
  tasks: number;
  /** Batches the database refused (their rows changed between plan and commit): retried next run. */
  refused: number;
}

/**
 * One cron run: walks tenants and archives their due batches, at most `maxBatches`. Off when
 * ARCHIVE_AFTER_DAYS is 0; without the bucket it logs a configuration_error and does nothing.
 */
export async function archiveSettledHistory(
  env: ArchiveEnv & Pick<Env, "ARCHIVE_AFTER_DAYS">,
  now: number,
  options: { maxBatches?: number; batchItems?: number; afterMs?: number } = {},
): Promise<ArchiveRun> {
  const run: ArchiveRun = { objects: 0, ledgerRows: 0, tasks: 0, refused: 0 };
  const afterMs = options.afterMs ?? configFrom(env as Env).archiveAfterMs;
  if (afterMs <= 0) return run;
  const bucket = env.ARCHIVE_BUCKET;
  if (!bucket) {
    logEvent("configuration_error", {
      missing_setting: "ARCHIVE_BUCKET",
      message: "ARCHIVE_AFTER_DAYS is set but there is no ARCHIVE_BUCKET binding: nothing is archived",
    });
    return run;
  }
  const cutoff = now - afterMs;
  let budget = options.maxBatches ?? ARCHIVE_BATCHES_PER_RUN;
  let after = "";
  while (budget > 0) {
    const tenants = await tenantIdsAfter(env.DB, after, TENANT_PAGE);
    if (!tenants.length) break;
    for (const tenantId of tenants) {
      while (budget > 0) {
        const plan = await nextArchivePlan(
          env.DB,
          tenantId,
          cutoff,
          options.batchItems ?? ARCHIVE_BATCH_ITEMS,
        );
        if (!plan) break;
        budget--;
        const bytes = await writeArchiveObject(bucket, plan);
        const result = await commitArchive(env.DB, plan, bytes, now);
        if ("refused" in result) {
          run.refused++;
          logEvent("archive_refused", { tenant_id: tenantId, object_key: plan.key, refusal: result.refused });
          break;
        }
        run.objects++;
        run.ledgerRows += plan.ledger.length;
        run.tasks += plan.tasks.length;
        logEvent("archive_committed", {
          tenant_id: tenantId,
          object_key: plan.key,
          ledger_rows: plan.ledger.length,
          task_rows: plan.tasks.length,
          bytes,
        });
      }
      if (budget <= 0) break;
    }
    after = tenants.at(-1)!;
  }
  return run;
}

/**
 * Archived ledger rows matching `filter` with ids above `afterId`, in id order, at most
 * `limit` of them, reading only as many objects (in order of their first id) as it takes to
 * know that no later object holds a smaller id than the last row returned.
 */
export async function archivedLedgerRows(
  env: ArchiveEnv,
  filter: LedgerFilter & { from: number },
  afterId: number,
  limit: number,
  maxObjects = MAX_ARCHIVE_OBJECTS_PER_READ,
): Promise<LedgerEntry[]> {
  if (!env.ARCHIVE_BUCKET) return [];
  const to = filter.to ?? Number.MAX_SAFE_INTEGER;
  const objects = await archiveObjectsFor(env.DB, {
    tenantId: filter.tenantId,
    from: filter.from,
    to,
    afterId,
  });
  const found: LedgerEntry[] = [];
  let opened = 0;
  for (const object of objects) {
    if (found.length >= limit && object.min_id > found[limit - 1]!.id) break;
    if (++opened > maxObjects) {
      throw new ApiError(
        "invalid_request",
        `from: this range reaches more than ${maxObjects} archived objects for too few matching rows; narrow from/to (or filter by tenant_id)`,
        { field: "from" },
      );
    }
    const contents = await readArchiveObject(env.ARCHIVE_BUCKET, object.object_key);
    if (!contents) throw new Error(`archive object ${object.object_key} is listed but missing`);
    for (const row of contents.ledger) {
      if (row.id > afterId && matches(row, filter, to)) found.push(row);
    }
    found.sort((a, b) => a.id - b.id);
    found.length = Math.min(found.length, limit);
  }
  return found;
}

function matches(row: LedgerEntry, filter: LedgerFilter & { from: number }, to: number): boolean {
  return (
    (!filter.tenantId || row.tenant_id === filter.tenantId) &&
    (!filter.keyId || row.key_id === filter.keyId) &&
    (!filter.taskId || row.task_id === filter.taskId) &&
    (!filter.kind || row.kind === filter.kind) &&
    (!filter.action || row.action === filter.action) &&
    row.created_at >= filter.from &&
    row.created_at < to
  );
}
