/**
 * The gate's record of its member's recent submits, for the operator's view, in the gate's
 * SQLite: the submits of the health window (at most MAX_ROWS, so a flood cannot grow it
 * without bound) and at least the last MEDIAN_OF, whose median latency is shown. Polls are
 * not here: they would drown the submits' latency. Only the operator's view reads it, never
 * routing, so a submit pays one insert and two deletes that read only what they delete (and at
 * most MEDIAN_OF more).
 */

/** One submit as the task saw it: its round trip, and whether the member failed it. */
export interface SubmitSample {
  ms: number;
  /** false: the member failed it (5xx, timeout, refused key, unreadable); a refused request is ok. */
  ok: boolean;
}

export interface SubmitStats {
  /** Submits within the health window. */
  inWindow: number;
  /** Of those, the ones the member failed. */
  failedInWindow: number;
  /** The median round trip of the last MEDIAN_OF submits, whatever their age; null before the first. */
  p50Ms: number | null;
}

export const MEDIAN_OF = 100;
/** Past this many submits in one window, the window's counts saturate. */
export const MAX_ROWS = 10_000;

export class SubmitTimings {
  constructor(private readonly sql: SqlStorage) {
    // No AUTOINCREMENT: rows leave from the oldest end only and the newest always stays, so the
    // rowid (max + 1) keeps counting without a sqlite_sequence write per submit. Gates created
    // with AUTOINCREMENT keep it.
    sql.exec(
      `CREATE TABLE IF NOT EXISTS submit_timings (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL,
        ms INTEGER NOT NULL, ok INTEGER NOT NULL)`,
    );
    sql.exec("CREATE INDEX IF NOT EXISTS submit_timings_by_at ON submit_timings (at)");
  }

  add(sample: SubmitSample, now: number, windowMs: number): void {
    const seq = this.sql
      .exec<{ seq: number }>(
        "INSERT INTO submit_timings (at, ms, ok) VALUES (?1, ?2, ?3) RETURNING seq",
        now,
        Math.max(0, Math.round(sample.ms)),
        sample.ok ? 1 : 0,
      )
      .one().seq;
    // Two bounded deletes rather than one `seq <= … AND (at <= … OR seq <= …)`: that one walked
    // the key range and read the whole window's rows again on every submit (up to MAX_ROWS).
    // Older than the window (beyond the last MEDIAN_OF), found through the time index:
    this.sql.exec(
      "DELETE FROM submit_timings INDEXED BY submit_timings_by_at WHERE at <= ?1 AND seq <= ?2",
      now - windowMs,
      seq - MEDIAN_OF,
    );
    // Past MAX_ROWS, the oldest, through the key:
    this.sql.exec("DELETE FROM submit_timings WHERE seq <= ?1", seq - MAX_ROWS);
  }

  stats(now: number, windowMs: number): SubmitStats {
    const counts = this.sql
      .exec<{ n: number; failed: number }>(
        "SELECT COUNT(*) AS n, COALESCE(SUM(ok = 0), 0) AS failed FROM submit_timings WHERE at > ?1",
        now - windowMs,
      )
      .one();
    const last = this.sql
      .exec<{ ms: number }>("SELECT ms FROM submit_timings ORDER BY seq DESC LIMIT ?1", MEDIAN_OF)
      .toArray();
    return { inWindow: counts.n, failedInWindow: counts.failed, p50Ms: median(last.map((row) => row.ms)) };
  }
}

/** The lower median (an observed value, never an average of two). */
export function median(values: readonly number[]): number | null {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}
