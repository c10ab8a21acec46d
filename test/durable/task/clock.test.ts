import { describe, expect, it } from "vitest";
import { TaskClock } from "../../../src/durable/task/clock";

/** How far the clock is ahead of real time (read in one synchronous step). */
const lead = (clock: TaskClock) => clock.now() - Date.now();

describe("TaskClock", () => {
  it("reads real time until a test moves it, and only ever moves forward", () => {
    const clock = new TaskClock();
    expect(Math.abs(lead(clock))).toBeLessThanOrEqual(1);
    clock.advanceTo(Date.now() + 3_600_000);
    expect(Math.abs(lead(clock) - 3_600_000)).toBeLessThanOrEqual(1);
    clock.advanceTo(Date.now() + 60_000); // earlier than the clock already is: no move
    expect(Math.abs(lead(clock) - 3_600_000)).toBeLessThanOrEqual(1);
    const before = lead(clock);
    clock.advanceBy(-5);
    expect(lead(clock)).toBeGreaterThanOrEqual(before - 1);
    clock.advanceBy(1_000);
    expect(Math.abs(lead(clock) - before - 1_000)).toBeLessThanOrEqual(1);
  });

  it("maps a time on its timeline to the wall-clock moment the runtime must wake us", () => {
    const clock = new TaskClock();
    expect(clock.wallTimeOf(1_000_000)).toBe(1_000_000);
    clock.advanceBy(10_000);
    expect(clock.wallTimeOf(1_000_000)).toBe(990_000);
  });
});
