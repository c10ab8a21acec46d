import { type Action, effectiveBatchSize, type Speed } from "./actions";

/**
 * What changes the upstream's bill, read from a request the way Midjourney reads it: from
 * the body's fields AND from `--flags` inside the prompt (also with an em dash, which
 * Midjourney accepts for `--`). Per the upstream's price list only the action, the speed,
 * the video resolution and the number of jobs change the bill, so this finds exactly those
 * and refuses what it cannot price: conflicting values, permutation prompts beyond the job
 * bound, flags smuggled into fields the upstream appends to the prompt.
 */
export interface BillableParams {
  /** Image speed (relax when none is given); null for video, which has no speed. */
  speed: Speed | null;
  /** Separate upstream jobs this request makes (repeat × permutations); each is one task. */
  jobs: number;
  /** Video: videos per job (batch size) and resolution. */
  videoBatch: 1 | 2 | 4;
  videoHd: boolean;
}

export class UnbillableRequest extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/** Midjourney's own ceiling on jobs from one prompt (repeat and permutations alike). */
export const MAX_JOBS = 40;

/** Actions whose answer can carry several tasks (upstream: `repeat` on imagine and edits). */
const MULTI_JOB_ACTIONS: ReadonlySet<Action> = new Set<Action>(["imagine", "edits"]);

/** Body fields whose text the upstream may append to the prompt (`--no …`, `--style …`). */
const APPENDED_FIELDS = ["negative_prompt", "style", "cref", "sref", "dref", "niji", "animate_mode"];

/** Body fields holding a prompt Midjourney reads parameters from. */
const PROMPT_FIELDS = ["prompt"];

const FLAG = /(?:^|\s)(?:--|\u2014)([A-Za-z_][\w-]*)(?:\s+([^\s-\u2014][^\s]*))?/g;

interface Flag {
  name: string;
  value: string | undefined;
}

function flagsIn(text: string): Flag[] {
  return [...text.matchAll(FLAG)].map((m) => ({ name: m[1]!.toLowerCase(), value: m[2] }));
}

const SPEED_FLAGS: Record<string, Speed> = { relax: "relax", fast: "fast", turbo: "turbo" };
const REPEAT_FLAGS = new Set(["repeat", "r"]);
const BATCH_FLAGS = new Set(["bs", "batch_size", "batch"]);
/** Flags that would turn the job into another billed product or multiply it in ways we do not price. */
const REFUSED_FLAGS = new Set(["video", "vid", "permutations"]);

/**
 * Jobs a permutation prompt makes: `a {red, green} fox {cat, dog}` → 4; an option holding
 * groups of its own expands into their product (`{a, {b, c}}` → 3); `\,` is a literal comma.
 */
export function permutationCount(prompt: string): number {
  let i = 0;
  // The product of the groups in a run of text, up to the end of the current option.
  const sequence = (): number => {
    let product = 1;
    while (i < prompt.length) {
      const ch = prompt[i];
      if (ch === "\\") i += 2;
      else if (ch === "{") {
        i++;
        product *= group();
        if (product > MAX_JOBS * MAX_JOBS) return product;
      } else if (ch === "," || ch === "}") return product;
      else i++;
    }
    return product;
  };
  // The sum over a group's options, each expanded; consumes the closing brace.
  const group = (): number => {
    let sum = 0;
    for (;;) {
      sum += sequence();
      if (i >= prompt.length) return sum;
      if (prompt[i++] === "}") return sum;
    }
  };
  let total = 1;
  while (i < prompt.length) {
    total *= sequence();
    i++; // a stray top-level , or } is plain text
  }
  return total;
}

export function billableParams(action: Action, body: Record<string, unknown>): BillableParams {
  for (const field of APPENDED_FIELDS) {
    const value = body[field];
    if (typeof value === "string" && flagsIn(value).length) {
      throw new UnbillableRequest(field, "must not contain --parameters (give them as fields)");
    }
  }
  const isVideo = action === "video";
  let speed: Speed | null = isVideo ? null : ((body.speed as Speed | undefined) ?? null);
  const fieldSpeed = speed;
  let repeat = typeof body.repeat === "number" ? body.repeat : null;
  const fieldRepeat = repeat;
  let videoBatch: 1 | 2 | 4 = isVideo ? effectiveBatchSize(body.batch_size) : 1;
  let videoHd = isVideo && typeof body.video_type === "string" && body.video_type.endsWith("_720");
  let permutations = 1;

  for (const field of PROMPT_FIELDS) {
    const text = body[field];
    if (typeof text !== "string") continue;
    permutations *= permutationCount(text);
    for (const flag of flagsIn(text)) {
      if (REFUSED_FLAGS.has(flag.name)) {
        throw new UnbillableRequest(field, `--${flag.name} is not accepted inside the prompt`);
      }
      const flagSpeed = SPEED_FLAGS[flag.name];
      if (flagSpeed) {
        if (isVideo) throw new UnbillableRequest(field, `video has no speed; remove --${flag.name}`);
        if (fieldSpeed !== null && fieldSpeed !== flagSpeed) {
          throw new UnbillableRequest(field, `--${flag.name} contradicts speed "${fieldSpeed}"`);
        }
        if (speed !== null && speed !== flagSpeed) {
          throw new UnbillableRequest(field, "give one speed only");
        }
        speed = flagSpeed;
      } else if (REPEAT_FLAGS.has(flag.name)) {
        const n = Number(flag.value);
        if (!Number.isInteger(n) || n < 1 || n > MAX_JOBS) {
          throw new UnbillableRequest(field, `--${flag.name} needs a whole number from 1 to ${MAX_JOBS}`);
        }
        if (fieldRepeat !== null && fieldRepeat !== n) {
          throw new UnbillableRequest(field, `--${flag.name} ${n} contradicts repeat ${fieldRepeat}`);
        }
        if (repeat !== null && repeat !== n) throw new UnbillableRequest(field, "give one repeat only");
        repeat = n;
      } else if (BATCH_FLAGS.has(flag.name)) {
        const n = Number(flag.value);
        if (!isVideo) throw new UnbillableRequest(field, `--${flag.name} is only for video`);
        if (n !== 1 && n !== 2 && n !== 4)
          throw new UnbillableRequest(field, `--${flag.name} must be 1, 2 or 4`);
        if (body.batch_size !== undefined && effectiveBatchSize(body.batch_size) !== n) {
          throw new UnbillableRequest(field, `--${flag.name} ${n} contradicts batch_size`);
        }
        videoBatch = n;
      } else if (flag.name === "hd" && isVideo) {
        videoHd = true; // priced as the 720p video it may become
      }
    }
  }
  const jobs = (repeat ?? 1) * permutations;
  if (jobs > 1 && !MULTI_JOB_ACTIONS.has(action)) {
    throw new UnbillableRequest(
      body.repeat !== undefined ? "repeat" : "prompt",
      `${action} makes one job per request; remove --repeat and {permutations}`,
    );
  }
  if (jobs > MAX_JOBS) {
    throw new UnbillableRequest("prompt", `this request would make ${jobs} jobs; at most ${MAX_JOBS}`);
  }
  return { speed: isVideo ? null : (speed ?? "relax"), jobs, videoBatch, videoHd };
}
