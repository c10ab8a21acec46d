/**
 * The task's sense of time. Every timestamp the TaskObject writes or compares comes from
 * here, never from `Date.now()` directly, so tests move time by moving this clock (with
 * `runInDurableObject`) instead of rewriting the object's storage.
 */
export interface Clock {
  now(): number;
  wallTimeOf(at: number): number;
  /** The inverse of `wallTimeOf`, at the clock's current offset. */
  timeOf(wallTime: number): number;
}

/**
 * Real time plus an offset that only moves forward. In production nothing moves it (the
 * offset stays 0); tests advance it to make timers due, as if that much time had passed.
 */
export class TaskClock implements Clock {
  private offsetMs = 0;

  now(): number {
    return Date.now() + this.offsetMs;
  }

  /** Moves time forward to `at` (never backwards: timers already passed stay passed). */
  advanceTo(at: number): void {
    this.offsetMs = Math.max(this.offsetMs, at - Date.now());
  }

  advanceBy(ms: number): void {
    this.offsetMs += Math.max(0, ms);
  }

  wallTimeOf(at: number): number {
    return at - this.offsetMs;
  }

  timeOf(wallTime: number): number {
    return wallTime + this.offsetMs;
  }
}
