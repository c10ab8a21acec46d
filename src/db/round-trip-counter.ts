/** What D1 reported for the statements of one counter: round trips and rows from each result's meta. */
export interface D1Usage {
  roundTrips: number;
  rowsRead: number;
  rowsWritten: number;
  /** Statements run through first()/raw()/exec(), whose result carries no row counts. */
  unmetered: number;
}

export const emptyUsage = (): D1Usage => ({ roundTrips: 0, rowsRead: 0, rowsWritten: 0, unmetered: 0 });

function addMeta(usage: D1Usage, result: unknown): void {
  const meta = (result as { meta?: { rows_read?: number; rows_written?: number } } | null)?.meta;
  if (!meta) {
    usage.unmetered++;
    return;
  }
  usage.rowsRead += meta.rows_read ?? 0;
  usage.rowsWritten += meta.rows_written ?? 0;
}

/**
 * Counts D1 round trips (each statement run and each batch is one) and sums the rows D1
 * reports read and written in each result's meta. Used by the benchmarks, only in
 * development (the `x-debug-d1` header and the Durable Objects' counted binding in
 * src/index.ts): it wraps the binding, so production never pays for it. `first()` is
 * answered from `all()` so that its rows are counted too (same statement, same first row).
 */
export function countRoundTrips(
  db: D1Database,
  usage: D1Usage = emptyUsage(),
): { db: D1Database; count: () => number; usage: D1Usage } {
  const real = new WeakMap<object, D1PreparedStatement>();
  const wrap = (statement: D1PreparedStatement): D1PreparedStatement => {
    const proxy = new Proxy(statement, {
      get(target, property) {
        if (property === "bind") return (...values: unknown[]) => wrap(target.bind(...values));
        if (property === "first") {
          return async (column?: string) => {
            usage.roundTrips++;
            const result = await target.all<Record<string, unknown>>();
            addMeta(usage, result);
            const row = result.results[0];
            if (row === undefined) return null;
            return column === undefined ? row : (row[column] ?? null);
          };
        }
        if (property === "all" || property === "run") {
          return async (...args: unknown[]) => {
            usage.roundTrips++;
            const result = await (target[property] as (...a: unknown[]) => Promise<unknown>).apply(
              target,
              args,
            );
            addMeta(usage, result);
            return result;
          };
        }
        if (property === "raw") {
          return (...args: unknown[]) => {
            usage.roundTrips++;
            usage.unmetered++;
            return (target.raw as (...a: unknown[]) => unknown).apply(target, args);
          };
        }
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    real.set(proxy, statement);
    return proxy;
  };
  const counted = new Proxy(db, {
    get(target, property) {
      if (property === "prepare") return (sql: string) => wrap(target.prepare(sql));
      if (property === "batch") {
        return async (statements: D1PreparedStatement[]) => {
          usage.roundTrips++;
          const results = await target.batch(statements.map((s) => real.get(s) ?? s));
          for (const result of results) addMeta(usage, result);
          return results;
        };
      }
      if (property === "exec") {
        return (sql: string) => {
          usage.roundTrips++;
          usage.unmetered++;
          return target.exec(sql);
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { db: counted, count: () => usage.roundTrips, usage };
}
