/**
 * The task's single alarm and its timers.
 *
 * What happens when an alarm fires twice: nothing more than once. The runtime delivers
 * alarms at least once, so a duplicate (or a late retry, or a test calling `alarm()` with
 * no `alarmInfo`) runs the same handler again. Every timer lives in storage (the record's
 * poll, MODAL deadline and lifetime timers, each webhook delivery's next attempt, the
 * retention time), and each run judges what is due against the clock, now; work that is
 * not due does nothing, and work that is due moves the task's state before its effects,
 * whose money side is guarded in D1 (settled once, each step refunded once). A duplicate
 * arriving after we re-armed for a later time therefore finds nothing due and re-arms.
 *
 * A run that throws backs off (the next alarm at least 5 s later) and re-arms itself: the
 * runtime's own retries stop after about seven tries, so we never rely on them.
 */
import { logEvent } from "../../log";
import type { Clock } from "./clock";

/** After a failed run, the next one waits at least this long instead of spinning. */
const BACKOFF_MS = 5_000;
/** The soonest an alarm is armed: never in the past, so a due timer still gets its own run. */
const MIN_DELAY_MS = 10;

export class Scheduler {
  private retryNotBefore = 0;
  /** The time this instance last armed the alarm for, until an alarm runs or is cancelled. */
  private pendingAt: number | null = null;

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly clock: Clock,
  ) {}

  /** Arms the single alarm for the earliest of the timers; with none, leaves the alarm as it is. */
  armAtEarliest(timers: ReadonlyArray<number | null>): void {
    const due = timers.filter((at): at is number => at !== null);
    if (!due.length) return;
    const at = Math.max(Math.min(...due), this.clock.now() + MIN_DELAY_MS, this.retryNotBefore);
    // This instance armed that very time and no alarm has run since: the alarm is still
    // pending, so skip the setAlarm (the runtime stores each one).
    if (this.pendingAt === at) return;
    this.pendingAt = at;
    void this.storage.setAlarm(this.clock.wallTimeOf(at));
  }

  /** The time (on the task's clock, as it is now) the alarm is armed for, or null. */
  async armedFor(): Promise<number | null> {
    const wallTime = await this.storage.getAlarm();
    return wallTime === null ? null : this.clock.timeOf(wallTime);
  }

  /** The next runs wait a while: something failed and would fail again at once. */
  backOff(): void {
    this.retryNotBefore = this.clock.now() + BACKOFF_MS;
  }

  /**
   * One alarm delivery: runs the due work against the clock, and whatever happens re-arms
   * for the next timer. Never throws (a throw would only feed the runtime's bounded retries).
   */
  async run(
    alarmInfo: AlarmInvocationInfo | undefined,
    work: (now: number) => Promise<void>,
    rearm: () => void,
    context: Record<string, unknown>,
  ): Promise<void> {
    this.pendingAt = null; // this alarm is spent, whichever time it was armed for
    try {
      await work(this.clock.now());
    } catch (error) {
      this.backOff();
      logEvent("task_alarm_error", {
        ...context,
        retry_count: alarmInfo?.retryCount ?? 0,
        error: String(error),
      });
    } finally {
      rearm();
    }
  }

  async cancel(): Promise<void> {
    this.pendingAt = null;
    await this.storage.deleteAlarm();
  }
}
