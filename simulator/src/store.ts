/**
 * SimulatorStore: the single Durable Object (idFromName("sim")) holding all
 * simulator state in SQLite: tasks, queued faults, call counters and runtime
 * config. Every method runs synchronously between awaits, so each call is
 * atomic without explicit locking.
 */

import { DurableObject } from "cloudflare:workers";
import {
  ACTION_NAMES,
  type ActionName,
  isActionName,
  needsIndex,
  parentProblem,
  planSubmit,
  resultKind,
  type SubmitPlan,
} from "./actions";
import { buttonsFor, type CustomIdSelection, parseCustomId } from "./buttons";
import {
  derivePhase,
  isTerminal,
  MODAL_STEP_MS,
  modalTimeoutMs,
  RETENTION_MS,
  scaled,
  simulatedDurationMs,
} from "./clock";
import type { Env } from "./env";
import { apiError, badRequest, notYourTask, taskNotFound } from "./errors";
import { type Fault, type FaultInput, faultMatches, handlesRequest, type RequestFacts } from "./faults";
import { hashString, newJobHash, newTaskId } from "./ids";
import { DEFAULT_VIDEO_BYTES } from "./mp4";
import { imageActionCost, modalCost, videoCost } from "./pricing";
import { renderTask, renderUnified } from "./render";
import type { ApiResult, Json, JsonObject, ResultKind, Speed, TaskRecord, TaskStatus } from "./types";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tasks (
	id TEXT PRIMARY KEY,
	api_key TEXT NOT NULL,
	action TEXT NOT NULL,
	kind TEXT NOT NULL,
	job_hash TEXT NOT NULL UNIQUE,
	parent_id TEXT,
	pick_index INTEGER,
	prompt TEXT NOT NULL,
	seed TEXT NOT NULL,
	speed TEXT,
	version TEXT,
	batch_size INTEGER NOT NULL,
	cost REAL NOT NULL,
	metadata TEXT,
	params TEXT NOT NULL,
	outcome TEXT NOT NULL,
	fail_reason TEXT,
	created_ms INTEGER NOT NULL,
	run_start_ms INTEGER,
	run_ms INTEGER NOT NULL,
	modal_deadline_ms INTEGER
);
CREATE INDEX IF NOT EXISTS tasks_by_key ON tasks (api_key);
CREATE TABLE IF NOT EXISTS faults (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	spec TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stats (
	api_key TEXT NOT NULL,
	kind TEXT NOT NULL,
	task_id TEXT NOT NULL,
	n INTEGER NOT NULL,
	PRIMARY KEY (api_key, kind, task_id)
);
CREATE TABLE IF NOT EXISTS video_files (
	api_key TEXT PRIMARY KEY,
	content_type TEXT NOT NULL,
	bytes BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS task_inputs (
	task_id TEXT PRIMARY KEY,
	image_urls TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS forgotten_files (
	task_id TEXT PRIMARY KEY,
	api_key TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS config (
	name TEXT PRIMARY KEY,
	value REAL NOT NULL
);
`;

type TaskRow = {
  id: string;
  api_key: string;
  action: string;
  kind: string;
  job_hash: string;
  parent_id: string | null;
  pick_index: number | null;
  prompt: string;
  seed: string;
  speed: string | null;
  version: string | null;
  batch_size: number;
  cost: number;
  metadata: string | null;
  params: string;
  outcome: string;
  fail_reason: string | null;
  created_ms: number;
  run_start_ms: number | null;
  run_ms: number;
  modal_deadline_ms: number | null;
};

const TASK_COLUMNS = [
  "id",
  "api_key",
  "action",
  "kind",
  "job_hash",
  "parent_id",
  "pick_index",
  "prompt",
  "seed",
  "speed",
  "version",
  "batch_size",
  "cost",
  "metadata",
  "params",
  "outcome",
  "fail_reason",
  "created_ms",
  "run_start_ms",
  "run_ms",
  "modal_deadline_ms",
] as const;

function toRecord(row: TaskRow): TaskRecord {
  return {
    id: row.id,
    apiKey: row.api_key,
    action: row.action as ActionName,
    kind: row.kind as ResultKind,
    jobHash: row.job_hash,
    parentId: row.parent_id,
    pickIndex: row.pick_index,
    prompt: row.prompt,
    seed: row.seed,
    speed: row.speed as Speed | null,
    version: row.version,
    batchSize: row.batch_size,
    cost: row.cost,
    metadata: row.metadata === null ? null : (JSON.parse(row.metadata) as Json),
    params: JSON.parse(row.params) as JsonObject,
    outcome: row.outcome === "failure" ? "failure" : "success",
    failReason: row.fail_reason,
    createdMs: row.created_ms,
    runStartMs: row.run_start_ms,
    runMs: row.run_ms,
    modalDeadlineMs: row.modal_deadline_ms,
  };
}

function toRow(task: TaskRecord): TaskRow {
  return {
    id: task.id,
    api_key: task.apiKey,
    action: task.action,
    kind: task.kind,
    job_hash: task.jobHash,
    parent_id: task.parentId,
    pick_index: task.pickIndex,
    prompt: task.prompt,
    seed: task.seed,
    speed: task.speed,
    version: task.version,
    batch_size: task.batchSize,
    cost: task.cost,
    metadata: task.metadata === null ? null : JSON.stringify(task.metadata),
    params: JSON.stringify(task.params),
    outcome: task.outcome,
    fail_reason: task.failReason,
    created_ms: task.createdMs,
    run_start_ms: task.runStartMs,
    run_ms: task.runMs,
    modal_deadline_ms: task.modalDeadlineMs,
  };
}

/** What the image routes need to draw a task's pictures. */
export interface ImageSource {
  taskId: string;
  kind: ResultKind;
  seed: string;
  prompt: string;
  pickIndex: number | null;
  batchSize: number;
  /** Size of each of its videos: the key's or the global setting, else the default. */
  videoBytes: number;
  /** A real video the key's tests uploaded (PUT /_sim/video-file): served for every video of its tasks. */
  videoFile: { contentType: string; bytes: Uint8Array } | null;
}

export interface TaskSummary {
  id: string;
  action: ActionName;
  status: TaskStatus;
  prompt: string;
  parent_id: string | null;
  speed: string | null;
  /** What the upstream bills for the task (USD). */
  cost: number;
  /** The submit's `image_urls` as received (tests check what the gateway forwarded). */
  image_urls: string[];
}

export interface SimStats {
  /** Every submit request that passed auth: submits_accepted + submits_refused. */
  submits: number;
  /** Submits that made (or, for /modal, continued) tasks, whatever answer the caller then got. */
  submits_accepted: number;
  /** Submits that made nothing: an error answer, or a fault that kept them from being handled. */
  submits_refused: number;
  /** Tasks made by accepted submits (repeat makes several). */
  tasks_created: number;
  queries: number;
  queries_by_task: Record<string, number>;
  /** Tasks not yet terminal on the key's clock (NOT_START, SUBMITTED, IN_PROGRESS, MODAL). */
  open_tasks: number;
  /** Most tasks open at once since the counters were reset (without key: the largest of any key). */
  peak_open_tasks: number;
}

export interface SimConfig {
  time_scale: number;
  clock_offset_ms: number;
  video_bytes: number;
  scope: string;
}

/** A parent task the submit may use, with the plan completed from its custom_id. */
type ResolvedParent = { parent: TaskRecord; plan: SubmitPlan };

const SIM_FAIL_TAG = "[sim:fail]";
/** A prompt with this tag fails as the upstream's moderation fails a prompt. */
const SIM_MODERATION_TAG = "[sim:moderation]";

const WEBHOOK_SINK_SCHEMA = `
CREATE TABLE IF NOT EXISTS webhook_requests (id INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL,
  at INTEGER NOT NULL, headers TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS webhook_sinks (sink TEXT PRIMARY KEY, fail_remaining INTEGER NOT NULL, status INTEGER NOT NULL);
`;

export class SimulatorStore extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(SCHEMA);
    this.sql.exec(WEBHOOK_SINK_SCHEMA);
  }

  // -------------------------------------------------------------------------
  // Webhook sink: a stand-in receiver for the gateway's webhooks in tests and dev.

  /** Records a received webhook and answers with the sink's configured failure, if any is left. */
  receiveWebhook(sink: string, headers: Record<string, string>, body: string): number {
    this.sql.exec(
      "INSERT INTO webhook_requests (sink, at, headers, body) VALUES (?1, ?2, ?3, ?4)",
      sink,
      Date.now(),
      JSON.stringify(headers),
      body,
    );
    const config = this.sql
      .exec<{ fail_remaining: number; status: number }>(
        "SELECT fail_remaining, status FROM webhook_sinks WHERE sink = ?1",
        sink,
      )
      .toArray()[0];
    if (config && config.fail_remaining > 0) {
      this.sql.exec("UPDATE webhook_sinks SET fail_remaining = fail_remaining - 1 WHERE sink = ?1", sink);
      return config.status;
    }
    return 200;
  }

  configureWebhookSink(sink: string, failNext: number, status: number): void {
    this.sql.exec(
      `INSERT INTO webhook_sinks (sink, fail_remaining, status) VALUES (?1, ?2, ?3)
       ON CONFLICT (sink) DO UPDATE SET fail_remaining = excluded.fail_remaining, status = excluded.status`,
      sink,
      failNext,
      status,
    );
  }

  webhooksReceived(sink: string): Array<{ at: number; headers: Record<string, string>; body: string }> {
    return this.sql
      .exec<{ at: number; headers: string; body: string }>(
        "SELECT at, headers, body FROM webhook_requests WHERE sink = ?1 ORDER BY id",
        sink,
      )
      .toArray()
      .map((row) => ({ at: row.at, headers: JSON.parse(row.headers), body: row.body }));
  }

  // -------------------------------------------------------------------------
  // Upstream API

  /**
   * Count the call and hand back the response fault it runs into, if any. A submit that
   * the fault keeps from being handled is refused here; handled ones are counted by submit().
   */
  intake(facts: RequestFacts): Fault | null {
    this.bump(facts.key, facts.on, facts.on === "query" ? (facts.taskId ?? "") : "");
    const known = facts.on === "query" && facts.taskId ? this.loadTask(facts.taskId) : null;
    // Queries carry no action or prompt: filter on the task's own.
    const enriched = known ? { ...facts, action: known.action, prompt: known.prompt } : facts;
    const fault = this.consumeFault(enriched, (candidate) => candidate.type !== "fail_task");
    if (facts.on === "submit" && fault && !handlesRequest(fault)) this.bump(facts.key, "submit_refused");
    return fault;
  }

  /** A submit handled: counted as accepted (tasks made or continued) or refused (an error answer). */
  submit(apiKey: string, action: string, body: Record<string, unknown> | null): ApiResult {
    const result = body
      ? this.handleSubmit(apiKey, action, body)
      : badRequest("request body must be a JSON object");
    if (result.status !== 200) {
      this.bump(apiKey, "submit_refused");
      return result;
    }
    this.bump(apiKey, "submit_accepted");
    if (action !== "modal") {
      this.bump(apiKey, "tasks_created", "", (result.body as { data: unknown[] }).data.length);
      this.raisePeakOpen(apiKey, this.openTaskCount(apiKey));
    }
    return result;
  }

  private handleSubmit(apiKey: string, action: string, body: Record<string, unknown>): ApiResult {
    if (!isActionName(action)) {
      return badRequest(`unknown action "${action}"; expected one of: ${ACTION_NAMES.join(", ")}`);
    }
    const planned = planSubmit(action, body);
    if (!planned.ok) return badRequest(planned.message);
    return this.ctx.storage.transactionSync(() =>
      action === "modal" ? this.continueModal(apiKey, planned.plan) : this.createTasks(apiKey, planned.plan),
    );
  }

  query(apiKey: string, taskId: string, origin: string, shape: "task" | "unified"): ApiResult {
    const task = this.loadTask(taskId);
    if (!task) return taskNotFound(taskId);
    if (task.apiKey !== apiKey) return notYourTask(taskId);
    const phase = derivePhase(task, this.nowFor(task.apiKey));
    const body = shape === "task" ? renderTask(task, phase, origin) : renderUnified(task, phase, origin);
    return { status: 200, body };
  }

  /** What the CDN needs to serve a task's files; null once they are forgotten. */
  imageSource(taskId: string): ImageSource | null {
    const task = this.loadTask(taskId);
    if (!task || this.filesForgotten(taskId)) return null;
    return {
      taskId: task.id,
      kind: task.kind,
      seed: task.seed,
      prompt: task.prompt,
      pickIndex: task.pickIndex,
      batchSize: task.batchSize,
      videoBytes: this.videoBytesFor(task.apiKey),
      videoFile: this.videoFileFor(task.apiKey),
    };
  }

  /** At most 1 MiB: a Durable Object's value is at most 2 MB. Null bytes forget it. */
  setVideoFile(apiKey: string, file: { contentType: string; bytes: Uint8Array } | null): void {
    if (file === null) {
      this.sql.exec("DELETE FROM video_files WHERE api_key = ?", apiKey);
      return;
    }
    this.sql.exec(
      "INSERT OR REPLACE INTO video_files (api_key, content_type, bytes) VALUES (?, ?, ?)",
      apiKey,
      file.contentType,
      file.bytes.slice().buffer,
    );
  }

  private videoFileFor(apiKey: string): { contentType: string; bytes: Uint8Array } | null {
    const row = this.sql
      .exec<{ content_type: string; bytes: ArrayBuffer }>(
        "SELECT content_type, bytes FROM video_files WHERE api_key = ?",
        apiKey,
      )
      .toArray()[0];
    return row ? { contentType: row.content_type, bytes: new Uint8Array(row.bytes) } : null;
  }

  // -------------------------------------------------------------------------
  // Control API (/_sim)

  /** One key's tasks, oldest first: lets tests see whether a faulted submit went through. */
  listTasks(apiKey: string): TaskSummary[] {
    return this.sql
      .exec<TaskRow>("SELECT * FROM tasks WHERE api_key = ? ORDER BY created_ms, rowid", apiKey)
      .toArray()
      .map((row) => {
        const task = toRecord(row);
        const phase = derivePhase(task, this.nowFor(apiKey));
        return {
          id: task.id,
          action: task.action,
          status: phase.status,
          prompt: task.prompt,
          parent_id: task.parentId,
          speed: task.speed,
          cost: task.cost,
          image_urls: this.imageUrlsOf(task.id),
        };
      });
  }

  private imageUrlsOf(taskId: string): string[] {
    const row = this.sql
      .exec<{ image_urls: string }>("SELECT image_urls FROM task_inputs WHERE task_id = ?", taskId)
      .toArray()[0];
    return row ? (JSON.parse(row.image_urls) as string[]) : [];
  }

  /** The CDN drops one task's files (as upstream links expire); the task itself stays. False if unknown. */
  forgetFiles(taskId: string): boolean {
    const task = this.loadTask(taskId);
    if (!task) return false;
    this.sql.exec(
      "INSERT OR IGNORE INTO forgotten_files (task_id, api_key) VALUES (?, ?)",
      task.id,
      task.apiKey,
    );
    return true;
  }

  /** Forget the files of every task the key has now; later tasks have files again. */
  forgetKeyFiles(apiKey: string): number {
    const remembered = this.sql
      .exec<{ id: string }>(
        "SELECT id FROM tasks WHERE api_key = ? AND id NOT IN (SELECT task_id FROM forgotten_files)",
        apiKey,
      )
      .toArray();
    for (const { id } of remembered) {
      this.sql.exec("INSERT INTO forgotten_files (task_id, api_key) VALUES (?, ?)", id, apiKey);
    }
    return remembered.length;
  }

  addFault(input: FaultInput): Fault {
    const spec = {
      type: input.type,
      on: input.on,
      status: input.status,
      delay_ms: input.delay_ms ?? null,
      retry_after: input.retry_after ?? null,
      remaining: input.count === "always" ? null : input.count,
      reason: input.reason ?? null,
      process: input.process ?? null,
      key: input.key ?? null,
      task_id: input.task_id ?? null,
      action: input.action ?? null,
      prompt_contains: input.prompt_contains ?? null,
    };
    const row = this.sql
      .exec<{ id: number }>("INSERT INTO faults (spec) VALUES (?) RETURNING id", JSON.stringify(spec))
      .one();
    return { id: row.id, ...spec };
  }

  listFaults(apiKey?: string): Fault[] {
    return this.loadFaults().filter((fault) => apiKey === undefined || fault.key === apiKey);
  }

  clearFaults(apiKey?: string): number {
    const doomed = this.listFaults(apiKey);
    for (const fault of doomed) this.sql.exec("DELETE FROM faults WHERE id = ?", fault.id);
    return doomed.length;
  }

  /**
   * Override settings globally or for one key: the time scale (read when a task is submitted)
   * and the size of the video files served. null removes an override; undefined leaves it.
   */
  configure(
    changes: { time_scale?: number | null; video_bytes?: number | null },
    apiKey?: string,
  ): SimConfig {
    for (const name of ["time_scale", "video_bytes"] as const) {
      const value = changes[name];
      if (value === undefined) continue;
      if (value === null) this.sql.exec("DELETE FROM config WHERE name = ?", scoped(name, apiKey));
      else this.writeConfig(scoped(name, apiKey), value);
    }
    return this.config(apiKey);
  }

  /** Move the simulated clock forward, for everyone or for one key's tasks. */
  advanceClock(advanceMs: number, apiKey?: string): SimConfig {
    const name = scoped("clock_offset", apiKey);
    this.writeConfig(name, (this.readConfig(name) ?? 0) + advanceMs);
    return this.config(apiKey);
  }

  config(apiKey?: string): SimConfig {
    return {
      time_scale: this.timeScaleFor(apiKey ?? ""),
      clock_offset_ms: this.clockOffsetFor(apiKey ?? ""),
      video_bytes: this.videoBytesFor(apiKey ?? ""),
      scope: apiKey ?? "global",
    };
  }

  stats(apiKey?: string): SimStats {
    const filter = apiKey === undefined ? "" : "WHERE api_key = ?";
    const rows = this.sql
      .exec<{ kind: string; task_id: string; n: number; top: number }>(
        `SELECT kind, task_id, SUM(n) AS n, MAX(n) AS top FROM stats ${filter} GROUP BY kind, task_id`,
        ...(apiKey === undefined ? [] : [apiKey]),
      )
      .toArray();
    const stats: SimStats = {
      submits: 0,
      submits_accepted: 0,
      submits_refused: 0,
      tasks_created: 0,
      queries: 0,
      queries_by_task: {},
      open_tasks: this.openTaskCount(apiKey),
      peak_open_tasks: 0,
    };
    for (const row of rows) {
      switch (row.kind) {
        case "query":
          stats.queries += row.n;
          stats.queries_by_task[row.task_id] = row.n;
          break;
        case "peak_open":
          stats.peak_open_tasks = row.top;
          break;
        case "submit":
          stats.submits += row.n;
          break;
        case "submit_accepted":
          stats.submits_accepted += row.n;
          break;
        case "submit_refused":
          stats.submits_refused += row.n;
          break;
        case "tasks_created":
          stats.tasks_created += row.n;
          break;
      }
    }
    return stats;
  }

  /**
   * Zero the counters of one key (or of all); the peak restarts from the tasks open now,
   * since the number open only ever rises when a task is made.
   */
  resetStats(apiKey?: string): SimStats {
    const keys =
      apiKey === undefined
        ? this.sql
            .exec<{ api_key: string }>("SELECT DISTINCT api_key FROM tasks")
            .toArray()
            .map((row) => row.api_key)
        : [apiKey];
    if (apiKey === undefined) this.sql.exec("DELETE FROM stats");
    else this.sql.exec("DELETE FROM stats WHERE api_key = ?", apiKey);
    for (const key of keys) this.raisePeakOpen(key, this.openTaskCount(key));
    return this.stats(apiKey);
  }

  /** Forget everything, or everything about one key. */
  reset(apiKey?: string): void {
    if (apiKey === undefined) {
      this.sql.exec(
        "DELETE FROM tasks; DELETE FROM faults; DELETE FROM stats; DELETE FROM config; DELETE FROM forgotten_files; DELETE FROM task_inputs; DELETE FROM video_files;",
      );
      return;
    }
    this.sql.exec(
      "DELETE FROM task_inputs WHERE task_id IN (SELECT id FROM tasks WHERE api_key = ?)",
      apiKey,
    );
    this.sql.exec("DELETE FROM tasks WHERE api_key = ?", apiKey);
    this.sql.exec("DELETE FROM forgotten_files WHERE api_key = ?", apiKey);
    this.sql.exec("DELETE FROM video_files WHERE api_key = ?", apiKey);
    this.sql.exec("DELETE FROM stats WHERE api_key = ?", apiKey);
    this.sql.exec(
      "DELETE FROM config WHERE name IN (?, ?, ?)",
      `time_scale:${apiKey}`,
      `clock_offset:${apiKey}`,
      `video_bytes:${apiKey}`,
    );
    this.clearFaults(apiKey);
  }

  // -------------------------------------------------------------------------
  // Submits

  private createTasks(apiKey: string, requested: SubmitPlan): ApiResult {
    let plan = requested;
    let parent: TaskRecord | null = null;
    if (plan.taskId !== null || plan.customId !== null) {
      const resolved = this.resolveParent(apiKey, plan);
      if ("status" in resolved) return resolved;
      ({ parent, plan } = resolved);
    }
    const submitted: Json[] = [];
    for (let copy = 0; copy < plan.repeat; copy++) {
      const task = this.newTask(apiKey, plan, parent, copy);
      this.insertTask(task);
      if (plan.imageUrls.length) {
        this.sql.exec(
          "INSERT INTO task_inputs (task_id, image_urls) VALUES (?, ?)",
          task.id,
          JSON.stringify(plan.imageUrls),
        );
      }
      submitted.push({ status: task.action === "inpaint" ? "modal" : "submitted", task_id: task.id });
    }
    return { status: 200, body: { code: 200, data: submitted } };
  }

  /** Find the parent by task_id or by the job hash in custom_id, and apply the parent rules. */
  private resolveParent(apiKey: string, plan: SubmitPlan): ResolvedParent | ApiResult {
    const selection = plan.customId === null ? null : parseCustomId(plan.customId);
    if (plan.customId !== null && selection === null) {
      return badRequest(`custom_id ${plan.customId} is not a recognised button customId`);
    }
    const parent =
      plan.taskId !== null ? this.loadTask(plan.taskId) : this.loadTaskByHash(selection?.hash ?? "");
    if (!parent) {
      return plan.taskId !== null
        ? taskNotFound(plan.taskId)
        : apiError(404, 3, `no task found for custom_id ${plan.customId}`, "invalid_request_error");
    }
    if (parent.apiKey !== apiKey) return notYourTask(parent.id);
    const problem = parentProblem(plan.action, parent, derivePhase(parent, this.nowFor(apiKey)).status);
    if (problem) return badRequest(problem);
    if (selection === null) return { parent, plan };
    return this.applyCustomId(parent, plan, selection);
  }

  /** custom_id must be one of the parent's buttons; it then supplies index, direction or zoom. */
  private applyCustomId(
    parent: TaskRecord,
    plan: SubmitPlan,
    selection: CustomIdSelection,
  ): ResolvedParent | ApiResult {
    const customId = plan.customId ?? "";
    if (!buttonsFor(parent.kind, parent.jobHash).some((button) => button.customId === customId)) {
      return badRequest(`custom_id ${customId} is not a button of task ${parent.id}`);
    }
    const params: JsonObject = { ...plan.params };
    if (plan.action === "pan" && params.direction === undefined && selection.direction) {
      params.direction = selection.direction;
    }
    if (plan.action === "zoom" && params.zoom === undefined && selection.zoom) params.zoom = selection.zoom;
    const completed = { ...plan, index: plan.index ?? selection.index, params };
    if (needsIndex(plan.action) && completed.index === null) {
      return badRequest(`custom_id ${customId} does not pick an image; send index instead`);
    }
    if (plan.action === "pan" && params.direction === undefined) {
      return badRequest(`custom_id ${customId} is not a pan button; send direction instead`);
    }
    return { parent, plan: completed };
  }

  private newTask(apiKey: string, plan: SubmitPlan, parent: TaskRecord | null, copy: number): TaskRecord {
    const now = this.nowFor(apiKey);
    const timeScale = this.timeScaleFor(apiKey);
    const id = newTaskId(now);
    const prompt = plan.prompt ?? parent?.prompt ?? "";
    const isVideo = plan.action === "video";
    const speed = isVideo ? null : plan.speed;
    const batchSize = isVideo ? Number(plan.params.batch_size ?? 1) : 1;
    const failReason = this.failureFor(apiKey, plan, prompt);
    const waitsForModal = plan.action === "inpaint";
    return {
      id,
      apiKey,
      action: plan.action,
      kind: resultKind(plan.action),
      jobHash: newJobHash(),
      parentId: parent?.id ?? null,
      pickIndex: pickIndexOf(plan),
      prompt,
      seed: seedFor(plan, parent, prompt, id, copy),
      speed,
      version: plan.version ?? parent?.version ?? null,
      batchSize,
      cost: isVideo
        ? videoCost(String(plan.params.video_type), batchSize)
        : imageActionCost(plan.action, plan.speed),
      metadata: plan.metadata,
      params: plan.index === null ? plan.params : { ...plan.params, index: plan.index },
      outcome: failReason === null ? "success" : "failure",
      failReason,
      createdMs: now,
      runStartMs: waitsForModal ? null : now,
      runMs: waitsForModal ? 0 : scaled(simulatedDurationMs(plan.action, plan.speed), timeScale),
      modalDeadlineMs: waitsForModal ? now + modalTimeoutMs(timeScale) : null,
    };
  }

  /** `/modal` continues the inpaint task itself: same id, now SUBMITTED and charged. */
  private continueModal(apiKey: string, plan: SubmitPlan): ApiResult {
    const taskId = plan.taskId ?? "";
    const task = this.loadTask(taskId);
    if (!task) return taskNotFound(taskId);
    if (task.apiKey !== apiKey) return notYourTask(taskId);
    const now = this.nowFor(apiKey);
    const problem = parentProblem("modal", task, derivePhase(task, now).status);
    if (problem) return badRequest(problem);
    const prompt = plan.prompt ?? task.prompt;
    const failReason = this.failureFor(apiKey, plan, prompt);
    this.insertTask({
      ...task,
      prompt,
      seed: `${task.seed}/modal:${hashString(`${prompt}|${plan.params.mode}`)}`,
      speed: plan.speed,
      cost: modalCost(plan.speed),
      metadata: plan.metadata ?? task.metadata,
      params: { ...task.params, ...plan.params },
      outcome: failReason === null ? "success" : "failure",
      failReason,
      runStartMs: now,
      runMs: scaled(MODAL_STEP_MS, this.timeScaleFor(apiKey)),
    });
    return { status: 200, body: { code: 200, data: [{ status: "submitted", task_id: task.id }] } };
  }

  /** A task fails when its prompt says so or a fail_task fault matches it. */
  private failureFor(apiKey: string, plan: SubmitPlan, prompt: string): string | null {
    if (prompt.includes(SIM_FAIL_TAG)) return `Simulated failure: prompt contains ${SIM_FAIL_TAG}`;
    if (prompt.includes(SIM_MODERATION_TAG)) return "Banned prompt detected by moderation (simulated)";
    const facts: RequestFacts = {
      on: "submit",
      key: apiKey,
      taskId: plan.taskId,
      action: plan.action,
      prompt,
    };
    const fault = this.consumeFault(facts, (candidate) => candidate.type === "fail_task");
    if (!fault) return null;
    return fault.reason ?? "Simulated failure (fail_task fault)";
  }

  // -------------------------------------------------------------------------
  // Tasks

  /** A task, or null if unknown or past the 3-day retention (then it is purged). */
  private loadTask(taskId: string): TaskRecord | null {
    const row = this.sql.exec<TaskRow>("SELECT * FROM tasks WHERE id = ?", taskId).toArray()[0];
    return row ? this.unlessExpired(toRecord(row)) : null;
  }

  private filesForgotten(taskId: string): boolean {
    return this.sql.exec("SELECT 1 FROM forgotten_files WHERE task_id = ?", taskId).toArray().length > 0;
  }

  private loadTaskByHash(jobHash: string): TaskRecord | null {
    const row = this.sql.exec<TaskRow>("SELECT * FROM tasks WHERE job_hash = ?", jobHash).toArray()[0];
    return row ? this.unlessExpired(toRecord(row)) : null;
  }

  private unlessExpired(task: TaskRecord): TaskRecord | null {
    if (this.nowFor(task.apiKey) - task.createdMs < RETENTION_MS) return task;
    this.sql.exec("DELETE FROM tasks WHERE id = ?", task.id);
    this.sql.exec("DELETE FROM task_inputs WHERE task_id = ?", task.id);
    return null;
  }

  /** Insert or replace (modal rewrites its inpaint task). */
  private insertTask(task: TaskRecord): void {
    const row = toRow(task);
    const placeholders = TASK_COLUMNS.map(() => "?").join(", ");
    this.sql.exec(
      `INSERT OR REPLACE INTO tasks (${TASK_COLUMNS.join(", ")}) VALUES (${placeholders})`,
      ...TASK_COLUMNS.map((column) => row[column]),
    );
  }

  // -------------------------------------------------------------------------
  // Faults and counters

  private loadFaults(): Fault[] {
    return this.sql
      .exec<{ id: number; spec: string }>("SELECT id, spec FROM faults ORDER BY id")
      .toArray()
      .map((row) => ({ ...(JSON.parse(row.spec) as Omit<Fault, "id">), id: row.id }));
  }

  /** Take one use of the oldest fault that matches; faults used up disappear. */
  private consumeFault(facts: RequestFacts, eligible: (fault: Fault) => boolean): Fault | null {
    const fault = this.loadFaults().find(
      (candidate) => eligible(candidate) && faultMatches(candidate, facts),
    );
    if (!fault) return null;
    if (fault.remaining === null) return fault;
    const remaining = fault.remaining - 1;
    if (remaining <= 0) this.sql.exec("DELETE FROM faults WHERE id = ?", fault.id);
    else {
      const { id, ...spec } = { ...fault, remaining };
      this.sql.exec("UPDATE faults SET spec = ? WHERE id = ?", JSON.stringify(spec), id);
    }
    return { ...fault, remaining };
  }

  private bump(apiKey: string, kind: string, taskId = "", by = 1): void {
    this.sql.exec(
      `INSERT INTO stats (api_key, kind, task_id, n) VALUES (?, ?, ?, ?)
			 ON CONFLICT (api_key, kind, task_id) DO UPDATE SET n = n + excluded.n`,
      apiKey,
      kind,
      taskId,
      by,
    );
  }

  private raisePeakOpen(apiKey: string, open: number): void {
    this.sql.exec(
      `INSERT INTO stats (api_key, kind, task_id, n) VALUES (?, 'peak_open', '', ?)
			 ON CONFLICT (api_key, kind, task_id) DO UPDATE SET n = MAX(n, excluded.n)`,
      apiKey,
      open,
    );
  }

  /**
   * Tasks of one key (or of all) not terminal now. SQL only narrows the rows (a task
   * whose working phase has ended is done); derivePhase decides, as for every read.
   */
  private openTaskCount(apiKey?: string): number {
    const rows = this.sql
      .exec<TaskRow>(
        `SELECT * FROM tasks WHERE (run_start_ms IS NULL OR run_start_ms + run_ms > ?)
         ${apiKey === undefined ? "" : "AND api_key = ?"}`,
        Date.now() + this.clockOffsetFor(apiKey ?? ""),
        ...(apiKey === undefined ? [] : [apiKey]),
      )
      .toArray();
    return rows.filter((row) => {
      const task = toRecord(row);
      return !isTerminal(derivePhase(task, this.nowFor(task.apiKey)).status);
    }).length;
  }

  // -------------------------------------------------------------------------
  // Time and config

  /** The simulated clock of one key: real time plus the global and the key's offsets. */
  private nowFor(apiKey: string): number {
    return Date.now() + this.clockOffsetFor(apiKey);
  }

  private clockOffsetFor(apiKey: string): number {
    const global = this.readConfig("clock_offset") ?? 0;
    return apiKey ? global + (this.readConfig(`clock_offset:${apiKey}`) ?? 0) : global;
  }

  /** Key override, else global override, else SIM_TIME_SCALE, else 1. */
  private timeScaleFor(apiKey: string): number {
    const own = apiKey ? this.readConfig(`time_scale:${apiKey}`) : null;
    return own ?? this.readConfig("time_scale") ?? parseTimeScale(this.env.SIM_TIME_SCALE);
  }

  /** Key override, else global override, else DEFAULT_VIDEO_BYTES. */
  private videoBytesFor(apiKey: string): number {
    const own = apiKey ? this.readConfig(`video_bytes:${apiKey}`) : null;
    return own ?? this.readConfig("video_bytes") ?? DEFAULT_VIDEO_BYTES;
  }

  private readConfig(name: string): number | null {
    const row = this.sql
      .exec<{ value: number }>("SELECT value FROM config WHERE name = ?", name)
      .toArray()[0];
    return row ? row.value : null;
  }

  private writeConfig(name: string, value: number): void {
    this.sql.exec(
      "INSERT INTO config (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
      name,
      value,
    );
  }
}

function scoped(name: string, apiKey?: string): string {
  return apiKey === undefined ? name : `${name}:${apiKey}`;
}

export function parseTimeScale(raw: string | undefined): number {
  const value = Number(raw ?? "1");
  return Number.isFinite(value) && value >= 0 ? value : 1;
}

/** 0-based cell the task shows: the upscaled crop, or the video's first frame. */
function pickIndexOf(plan: SubmitPlan): number | null {
  if (plan.action === "upscale") return (plan.index ?? 1) - 1;
  if (plan.action === "video" && plan.taskId !== null) return plan.index ?? 0;
  return null;
}

/**
 * Seed text of the pictures: the prompt for fresh work, the parent's seed plus
 * the step for follow-ups (an upscale keeps its parent's seed so it shows the
 * very cell it was cut from). Image inputs enter by hash: data URIs are large.
 */
function seedFor(
  plan: SubmitPlan,
  parent: TaskRecord | null,
  prompt: string,
  id: string,
  copy: number,
): string {
  const repeatTag = copy > 0 ? `#${copy}` : "";
  if (parent === null) {
    const inputs = plan.imageUrls.length > 0 ? `|img:${hashString(plan.imageUrls.join("|"))}` : "";
    return `${prompt}${inputs}${repeatTag}`;
  }
  if (plan.action === "upscale" || plan.action === "video") return parent.seed;
  if (plan.action === "reroll") return `${parent.seed}/reroll:${id}`;
  const extra = plan.prompt !== null ? `:${hashString(plan.prompt)}` : "";
  return `${parent.seed}/${plan.action}:${plan.index ?? 1}:${JSON.stringify(plan.params)}${extra}`;
}
