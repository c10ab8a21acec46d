/**
 * The TaskObject's part for hosted results (issue 14): before a SUCCESS is published, a
 * hosted tenant's result files are copied to R2 (services/assets.ts) and the links stored in
 * the record; every view the object publishes or answers then shows those links instead of
 * the upstream's URLs. The record's own `state.result` keeps the upstream's URLs and ids, so
 * follow-ups are forwarded exactly as before. A tenant in `upstream` mode has no `assets`
 * in its record: its views are the plain ones, unchanged.
 */
import { withLinks } from "../../domain/asset-links";
import type { TaskState } from "../../domain/task-machine";
import type { Env, GatewayConfig } from "../../env";
import { logEvent } from "../../log";
import { hostResultFiles } from "../../services/assets";
import type { Clock } from "./clock";
import type { TaskRecord } from "./lifecycle";

export class AssetHosting {
  /** One copy at a time: a poll and an alarm seeing the same SUCCESS share it. */
  private inFlight: Promise<void> | null = null;

  constructor(
    private readonly env: Pick<Env, "DB" | "ASSETS_BUCKET">,
    private readonly config: GatewayConfig,
    private readonly clock: Clock,
  ) {}

  /** Puts the result files in place and records their links (a no-op for `upstream` tenants). */
  beforeSuccess(
    record: TaskRecord,
    result: Record<string, unknown>,
    save: (change: (record: TaskRecord) => TaskRecord) => void,
  ): Promise<void> {
    // Admission knew the tenant's mode: an `upstream` tenant's SUCCESS reads nothing more.
    if (record.meta.hosted === false) return Promise.resolve();
    this.inFlight ??= (async () => {
      try {
        const assets = await hostResultFiles(this.env, this.config, {
          tenantId: record.meta.tenantId,
          taskId: record.meta.taskId,
          result,
          now: this.clock.now(),
        });
        if (assets) save((current) => ({ ...current, assets }));
      } catch (error) {
        // Never hold a SUCCESS back for good: the view keeps the upstream's URLs.
        logEvent("asset_hosting_failed", { task_id: record.meta.taskId, error: String(error) });
      } finally {
        this.inFlight = null;
      }
    })();
    return this.inFlight;
  }
}

/** The state as tenants see it: the result with the hosted links in place of the upstream's URLs. */
export function visibleState(record: TaskRecord): TaskState {
  if (!record.assets) return record.state;
  return { ...record.state, result: withLinks(record.state.result, record.assets.links) };
}
