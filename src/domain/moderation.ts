/**
 * Protecting shared upstream accounts from one tenant's prompts: the upstream failing a task
 * for its prompt (moderation) is a strike against the tenant; past `slowAfter` strikes within
 * the window its submits are slowed (one per `slowIntervalMs`), past `refuseAfter` they are
 * refused for a cooldown that doubles each time one starts. Pure: the tenant's hub keeps the
 * state and asks `judge` before each admission.
 */

export interface ModerationPolicy {
  windowMs: number;
  slowAfter: number;
  refuseAfter: number;
  slowIntervalMs: number;
  cooldownMs: number;
}

export interface ModerationState {
  /** Times of the strikes counted (those before the last cooldown are dropped). */
  strikes: number[];
  cooldownUntil: number | null;
  /** Cooldowns started so far: the next one lasts cooldownMs × 2^level. */
  level: number;
  /** The last submit let through while slowed. */
  lastSlowedAt: number | null;
}

export type ModerationVerdict =
  | { kind: "ok" }
  | { kind: "slowed"; retryAfterMs: number }
  | { kind: "cooldown"; retryAfterMs: number; started: boolean };

/** Upstreams word it differently; these are the phrasings of prompt moderation we know of. */
const MODERATION_REASON =
  /banned prompt|moderation|prohibited|inappropriate|nsfw|content policy|violat(es|ion|ed)|not allowed by/i;

export const isModerationFailure = (failReason: string | null | undefined): boolean =>
  typeof failReason === "string" && MODERATION_REASON.test(failReason);

/**
 * A tenant that behaves is forgiven step by step: each whole window without a strike after its
 * last cooldown ended (or its last strike, if later) takes one level off, so the next cooldown
 * is shorter again; at level 0 its record is clean. The anchor moves with each step taken, so
 * asking again gives the same answer.
 */
export function forgiven(state: ModerationState, now: number, policy: ModerationPolicy): ModerationState {
  if (state.level === 0 || state.cooldownUntil === null || now < state.cooldownUntil) return state;
  const anchor = Math.max(state.cooldownUntil, ...state.strikes);
  const quietWindows = Math.floor((now - anchor) / policy.windowMs);
  if (quietWindows < 1) return state;
  const level = Math.max(0, state.level - quietWindows);
  return {
    ...state,
    level,
    cooldownUntil: level === 0 ? null : anchor + (state.level - level) * policy.windowMs,
  };
}

/** Whether a submit may go on now, and the state after it (a started cooldown, a slowed submit let through). */
export function judge(
  current: ModerationState,
  now: number,
  policy: ModerationPolicy,
): { verdict: ModerationVerdict; next: ModerationState } {
  const state = forgiven(current, now, policy);
  if (state.cooldownUntil !== null && now < state.cooldownUntil) {
    return {
      verdict: { kind: "cooldown", retryAfterMs: state.cooldownUntil - now, started: false },
      next: state,
    };
  }
  const strikes = state.strikes.filter((at) => at > now - policy.windowMs);
  if (strikes.length >= policy.refuseAfter) {
    const duration = policy.cooldownMs * 2 ** state.level;
    const next = { strikes: [], cooldownUntil: now + duration, level: state.level + 1, lastSlowedAt: null };
    return { verdict: { kind: "cooldown", retryAfterMs: duration, started: true }, next };
  }
  if (strikes.length >= policy.slowAfter) {
    if (state.lastSlowedAt !== null && now - state.lastSlowedAt < policy.slowIntervalMs) {
      const retryAfterMs = state.lastSlowedAt + policy.slowIntervalMs - now;
      return { verdict: { kind: "slowed", retryAfterMs }, next: { ...state, strikes } };
    }
    return { verdict: { kind: "ok" }, next: { ...state, strikes, lastSlowedAt: now } };
  }
  return { verdict: { kind: "ok" }, next: { ...state, strikes } };
}
