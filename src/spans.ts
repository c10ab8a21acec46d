/**
 * Development only, for the benchmarks: how long the named steps of a submit wait, so the
 * bench can say where a submit's time goes instead of guessing. Outside development `span`
 * runs the work and measures nothing.
 *
 * workerd's clock moves only on I/O, so a span is the I/O its work waited for (D1, an RPC,
 * the upstream), not CPU; CPU is measured by the bench from the process. The Worker and its
 * objects share this isolate locally, so one table holds both sides.
 */
const MAX_SAMPLES = 10_000;

let enabled = false;
const samples = new Map<string, number[]>();

export function enableSpans(): void {
  enabled = true;
}

export async function span<T>(name: string, work: () => Promise<T>): Promise<T> {
  if (!enabled) return work();
  const started = performance.now();
  try {
    return await work();
  } finally {
    remember(name, performance.now() - started);
  }
}

function remember(name: string, ms: number): void {
  const list = samples.get(name) ?? [];
  if (list.length < MAX_SAMPLES) list.push(ms);
  samples.set(name, list);
}

export interface SpanSummary {
  count: number;
  mean_ms: number;
  p50_ms: number;
  p90_ms: number;
}

/** Every span seen since the last reset; reading with `reset` starts a new measurement. */
export function readSpans(reset = false): Record<string, SpanSummary> {
  const out: Record<string, SpanSummary> = {};
  for (const [name, list] of samples) {
    const sorted = [...list].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    out[name] = {
      count: sorted.length,
      mean_ms: round(sorted.reduce((a, b) => a + b, 0) / sorted.length),
      p50_ms: round(at(0.5)),
      p90_ms: round(at(0.9)),
    };
  }
  if (reset) samples.clear();
  return out;
}

const round = (ms: number) => Math.round(ms * 100) / 100;
