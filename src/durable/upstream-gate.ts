import { DurableObject } from "cloudflare:workers";
import {
  DEFAULT_HEALTH_POLICY,
  type HealthSnapshot,
  type HealthTransition,
  type Outcome,
  UpstreamHealth,
} from "../domain/upstream-health";
import { configFrom, type Env } from "../env";
import { logEvent } from "../log";
import { OperatorEvents, type OperatorTarget } from "./upstream-gate/operator-events";
import { type SubmitSample, type SubmitStats, SubmitTimings } from "./upstream-gate/submit-timings";

/** What a task asks of its upstream's gate; the caller reads the member's cap from D1. */
export interface AcquireRequest {
  maxInflight: number;
  /** Most tasks that may wait here; past it the task is refused ("queue_full"). */
  queueBound: number;
  /** The tenant the task is charged to: its waiting tasks here are counted apart. */
  tenantId?: string;
  /** Most of the tenant's tasks that may wait here; past it the task is refused ("tenant_queue_full"). */
  tenantQueueBound?: number;
  /** false: a full gate refuses ("full") instead of queueing, e.g. while failover has other members to try. */
  queue?: boolean;
  /** true: the circuit is not asked (a pool of one has no other member to shed traffic to). */
  ignoreCircuit?: boolean;
}

export type AcquireResult =
  | { granted: true }
  | { queued: true; position: number }
  | { refused: "full" | "queue_full" | "tenant_queue_full" | "circuit_open" };

export interface ReleaseResult {
  /** false when the task held no slot and was not waiting (a second release). */
  released: boolean;
  /** Waiting tasks that took the freed slots, in queue order: their task objects must be woken. */
  granted: string[];
}

export interface GateStatus {
  inflight: number;
  queued: number;
  /** The asking tenant's waiting tasks (0 when no tenant was named). */
  queuedForTenant: number;
  circuit: ReturnType<UpstreamHealth["circuit"]>;
  admitting: boolean;
  window: { samples: number; errors: number };
  lastError: string | null;
}

/** What the operator sees: the status, with the member's recent submits (never read by routing). */
export interface GateReport extends GateStatus {
  submits: SubmitStats;
}

/** How often a closed circuit's successes are written (see `saveHealth`). */
const HEALTH_ROUTINE_SAVE_MS = 1_000;

/**
 * One per upstream (idFromName(upstream id)): the exact count of our tasks open on it, a
 * FIFO queue of tasks waiting for a slot, and its health circuit (src/domain/upstream-health.ts).
 * Every method runs its SQL synchronously with no await in between, so calls never
 * interleave: hundreds of concurrent acquires cannot pass the cap. Acquire and release are
 * idempotent per task id, as at-least-once callers need.
 */
export class UpstreamGate extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly health: UpstreamHealth;
  /** The cap of the last acquire: releases fill freed slots up to it. */
  private maxInflight: number;
  private readonly submitTimings: SubmitTimings;
  readonly operatorEvents: OperatorEvents;
  /**
   * How many tasks hold a slot and wait, counted once per instance and kept by the statements
   * that change them: every acquire asks, and a COUNT(*) read every holder (the cap is 100 by
   * default, and a member may allow thousands).
   */
  private counts: { holding: number; waiting: number } | null = null;
  /** When the health snapshot was last written (see `saveHealth`). */
  private healthSavedAt = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS holders (task_id TEXT PRIMARY KEY, since INTEGER NOT NULL)`);
    this.sql.exec(
      `CREATE TABLE IF NOT EXISTS waiting (seq INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL UNIQUE,
        since INTEGER NOT NULL)`,
    );
    // Gates created before per-tenant queue bounds have no tenant column: add it once.
    const columns = this.sql.exec<{ name: string }>("PRAGMA table_info(waiting)").toArray();
    if (!columns.some((column) => column.name === "tenant_id")) {
      this.sql.exec("ALTER TABLE waiting ADD COLUMN tenant_id TEXT");
    }
    this.sql.exec("CREATE INDEX IF NOT EXISTS waiting_tenant ON waiting (tenant_id)");
    this.sql.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
    const saved = this.meta<HealthSnapshot>("health");
    this.health = new UpstreamHealth(DEFAULT_HEALTH_POLICY, Date.now, saved ?? undefined);
    this.maxInflight = this.meta<number>("max_inflight") ?? 0;
    this.submitTimings = new SubmitTimings(this.sql);
    this.operatorEvents = new OperatorEvents(this.sql);
  }

  acquire(taskId: string, request: AcquireRequest): AcquireResult {
    this.setCap(request.maxInflight);
    this.promote();
    if (this.holds(taskId)) return { granted: true };
    const position = this.positionOf(taskId);
    if (position !== null) return { queued: true, position };
    if (this.queued() === 0 && this.inflight() < this.maxInflight) {
      if (!request.ignoreCircuit && !this.admit()) return { refused: "circuit_open" };
      this.hold(taskId);
      return { granted: true };
    }
    if (request.queue === false) return { refused: "full" };
    if (this.queued() >= request.queueBound) return { refused: "queue_full" };
    const tenantId = request.tenantId ?? null;
    if (
      tenantId !== null &&
      request.tenantQueueBound !== undefined &&
      this.queuedFor(tenantId) >= request.tenantQueueBound
    ) {
      return { refused: "tenant_queue_full" };
    }
    this.sql.exec(
      "INSERT INTO waiting (task_id, since, tenant_id) VALUES (?1, ?2, ?3)",
      taskId,
      Date.now(),
      tenantId,
    );
    this.count().waiting++;
    return { queued: true, position: this.queued() };
  }

  /** Frees the task's slot (or takes it out of the queue) and hands freed slots to the queue's head. */
  release(taskId: string): ReleaseResult {
    const held = this.sql.exec("DELETE FROM holders WHERE task_id = ?1 RETURNING task_id", taskId).toArray();
    this.count().holding -= held.length;
    const waited = this.sql
      .exec("DELETE FROM waiting WHERE task_id = ?1 RETURNING task_id", taskId)
      .toArray();
    this.count().waiting -= waited.length;
    return { released: held.length + waited.length > 0, granted: this.promote() };
  }

  /**
   * What a request to this upstream got back (submits and polls); logs circuit transitions.
   * `outcome` null: the answer says nothing about the member's health (a refused request),
   * yet a submit's timing still counts.
   */
  record(upstreamId: string, outcome: Outcome | null, submit?: SubmitSample): HealthTransition[] {
    if (submit) this.submitTimings.add(submit, Date.now(), DEFAULT_HEALTH_POLICY.windowMs);
    if (!outcome) return [];
    const routine = outcome.kind === "ok" && this.health.circuit() === "closed";
    const transitions = this.health.record(outcome);
    this.saveHealth(routine && !transitions.length);
    for (const transition of transitions) {
      logEvent(transition.type, { upstream_id: upstreamId, ...transition });
      this.tellOperator(upstreamId, transition);
    }
    return transitions;
  }

  /** Delivers the operator events that are due; re-arms itself for the next retry. */
  override async alarm(): Promise<void> {
    let next: number | null;
    try {
      next = await this.operatorEvents.deliverDue(Date.now(), this.operatorTarget());
    } catch (error) {
      logEvent("operator_webhook_error", { error: String(error) });
      next = Date.now() + 60_000;
    }
    if (next !== null) await this.ctx.storage.setAlarm(next);
  }

  status(tenantId?: string): GateStatus {
    return {
      inflight: this.inflight(),
      queued: this.queued(),
      queuedForTenant: tenantId === undefined ? 0 : this.queuedFor(tenantId),
      circuit: this.health.circuit(),
      admitting: this.health.admitting(),
      window: this.health.window(),
      lastError: this.health.snapshot().lastError,
    };
  }

  report(): GateReport {
    return {
      ...this.status(),
      submits: this.submitTimings.stats(Date.now(), DEFAULT_HEALTH_POLICY.windowMs),
    };
  }

  /** Stores the transition's operator event beside the transition itself; the alarm sends it. */
  private tellOperator(upstreamId: string, transition: HealthTransition) {
    if (!this.operatorTarget()) return;
    const due = this.operatorEvents.enqueue(upstreamId, transition, Date.now());
    void this.ctx.storage.setAlarm(due);
  }

  private operatorTarget(): OperatorTarget | undefined {
    try {
      return configFrom(this.env).operatorWebhook;
    } catch (error) {
      logEvent("configuration_error", { error: String(error) });
      return undefined;
    }
  }

  /** Moves waiting tasks into free slots, oldest first; returns the ones granted. */
  private promote(): string[] {
    const granted: string[] = [];
    while (this.inflight() < this.maxInflight) {
      const head = this.sql
        .exec<{ task_id: string }>("SELECT task_id FROM waiting ORDER BY seq LIMIT 1")
        .toArray()[0];
      if (!head || !this.admit()) break;
      this.sql.exec("DELETE FROM waiting WHERE task_id = ?1", head.task_id);
      this.count().waiting--;
      this.hold(head.task_id);
      granted.push(head.task_id);
    }
    return granted;
  }

  private admit(): boolean {
    // A closed circuit lets every request through and changes nothing to remember.
    const closed = this.health.circuit() === "closed";
    const admitted = this.health.admit();
    if (!closed) this.saveHealth();
    return admitted;
  }

  private hold(taskId: string) {
    this.sql.exec("INSERT INTO holders (task_id, since) VALUES (?1, ?2)", taskId, Date.now());
    this.count().holding++;
  }

  private holds(taskId: string): boolean {
    return this.sql.exec("SELECT 1 FROM holders WHERE task_id = ?1", taskId).toArray().length > 0;
  }

  private positionOf(taskId: string): number | null {
    const row = this.sql
      .exec<{ position: number }>(
        `SELECT (SELECT COUNT(*) FROM waiting w2 WHERE w2.seq <= w.seq) AS position
         FROM waiting w WHERE task_id = ?1`,
        taskId,
      )
      .toArray()[0];
    return row ? row.position : null;
  }

  private inflight(): number {
    return this.count().holding;
  }

  private queued(): number {
    return this.count().waiting;
  }

  private count(): { holding: number; waiting: number } {
    this.counts ??= {
      holding: this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM holders").one().n,
      waiting: this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM waiting").one().n,
    };
    return this.counts;
  }

  private queuedFor(tenantId: string): number {
    return this.sql
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM waiting WHERE tenant_id = ?1", tenantId)
      .one().n;
  }

  private setCap(maxInflight: number) {
    if (maxInflight === this.maxInflight) return;
    this.maxInflight = maxInflight;
    this.setMeta("max_inflight", maxInflight);
  }

  /**
   * Writes the health snapshot. A `routine` change (one more success while the circuit is
   * closed) is written at most once a second: an eviction can forget at most that second's
   * successes, never an error, a pause or a circuit change, which are written at once.
   */
  private saveHealth(routine = false) {
    const now = Date.now();
    if (routine && now - this.healthSavedAt < HEALTH_ROUTINE_SAVE_MS) return;
    this.setMeta("health", this.health.snapshot());
    this.healthSavedAt = now;
  }

  private meta<T>(key: string): T | null {
    const row = this.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?1", key).toArray()[0];
    return row ? (JSON.parse(row.value) as T) : null;
  }

  private setMeta(key: string, value: unknown) {
    this.sql.exec(
      "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      key,
      JSON.stringify(value),
    );
  }
}
