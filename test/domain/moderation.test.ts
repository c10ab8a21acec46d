import { describe, expect, it } from "vitest";
import { isModerationFailure, judge, type ModerationState } from "../../src/domain/moderation";

const policy = {
  windowMs: 60_000,
  slowAfter: 2,
  refuseAfter: 3,
  slowIntervalMs: 10_000,
  cooldownMs: 100_000,
};
const fresh: ModerationState = { strikes: [], cooldownUntil: null, level: 0, lastSlowedAt: null };

describe("moderation failures", () => {
  it("are told from other failures by the upstream's reason", () => {
    expect(isModerationFailure("Banned prompt detected by moderation (simulated)")).toBe(true);
    expect(isModerationFailure("Your prompt violates the content policy")).toBe(true);
    expect(isModerationFailure("Simulated failure: prompt contains [sim:fail]")).toBe(false);
    expect(isModerationFailure("upstream timeout")).toBe(false);
    expect(isModerationFailure(null)).toBe(false);
  });

  it("below the first threshold nothing changes; strikes older than the window do not count", () => {
    expect(judge({ ...fresh, strikes: [1_000] }, 2_000, policy).verdict).toEqual({ kind: "ok" });
    const old = judge({ ...fresh, strikes: [0, 1] }, 70_000, policy);
    expect(old.verdict).toEqual({ kind: "ok" });
    expect(old.next.strikes).toEqual([]);
  });

  it("past the first threshold one submit goes through per interval, the others wait for it", () => {
    const state = { ...fresh, strikes: [1_000, 2_000] };
    const first = judge(state, 3_000, policy);
    expect(first.verdict).toEqual({ kind: "ok" });
    expect(judge(first.next, 5_000, policy).verdict).toEqual({ kind: "slowed", retryAfterMs: 8_000 });
    expect(judge(first.next, 13_000, policy).verdict).toEqual({ kind: "ok" });
  });

  it("past the second threshold submits are refused for a cooldown that doubles each time", () => {
    const first = judge({ ...fresh, strikes: [1, 2, 3] }, 10, policy);
    expect(first.verdict).toEqual({ kind: "cooldown", retryAfterMs: 100_000, started: true });
    expect(judge(first.next, 50_010, policy).verdict).toEqual({
      kind: "cooldown",
      retryAfterMs: 50_000,
      started: false,
    });
    // Over: the strikes that caused it are gone; three new ones start a cooldown twice as long.
    const after = judge(first.next, 100_010, policy);
    expect(after.verdict).toEqual({ kind: "ok" });
    const again = judge({ ...after.next, strikes: [100_020, 100_030, 100_040] }, 100_050, policy);
    expect(again.verdict).toEqual({ kind: "cooldown", retryAfterMs: 200_000, started: true });
    expect(again.next.level).toBe(2);
  });
});

describe("forgiveness", () => {
  it("a tenant that behaves is forgiven one level per quiet window after its cooldown", () => {
    const cooled: ModerationState = { strikes: [], cooldownUntil: 400_000, level: 2, lastSlowedAt: null };
    expect(judge(cooled, 400_000 + 59_999, policy).next.level).toBe(2);
    const oneWindow = judge(cooled, 400_000 + 60_000, policy).next;
    expect(oneWindow.level).toBe(1);
    expect(judge(oneWindow, 400_000 + 60_001, policy).next.level).toBe(1); // asking again changes nothing
    const clean = judge(cooled, 400_000 + 150_000, policy).next;
    expect(clean).toMatchObject({ level: 0, cooldownUntil: null });
    // The next cooldown is the first one's length again.
    const strikes = [550_000, 550_001, 550_002];
    expect(judge({ ...clean, strikes }, 550_003, policy).verdict).toEqual({
      kind: "cooldown",
      retryAfterMs: 100_000,
      started: true,
    });
  });

  it("a strike after the cooldown restarts the quiet time", () => {
    const cooled: ModerationState = {
      strikes: [430_000],
      cooldownUntil: 400_000,
      level: 2,
      lastSlowedAt: null,
    };
    expect(judge(cooled, 480_000, policy).next.level).toBe(2);
    expect(judge(cooled, 490_000, policy).next.level).toBe(1);
  });
});
