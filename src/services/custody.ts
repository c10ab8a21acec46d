import { openTasksAdmittedBefore } from "../db/tasks";
import type { Env } from "../env";
import { logEvent } from "../log";
import { settle } from "./billing";

/**
 * Every charge has an owner. A charge is committed by the admission batch before its
 * TaskObject records the task; if that hand-over never happened (an eviction, a throw, a
 * dropped connection between the two), nothing would ever settle the charge. The sweep finds
 * such charges by age and refunds them; reconciliation lists any it has not caught yet.
 */

/** A task whose object has not recorded it this long after admission is an orphan. */
export const ORPHAN_AFTER_MS = 5 * 60_000;
/** How many open tasks one sweep or one reconciliation looks at (oldest first). */
const BATCH = 200;

export async function sweepOrphanCharges(env: Env, now: number): Promise<number> {
  const candidates = await openTasksAdmittedBefore(env.DB, now - ORPHAN_AFTER_MS, BATCH);
  let refunded = 0;
  for (const task of candidates) {
    const stub = env.TASKS.get(env.TASKS.idFromName(task.id));
    // The object writes a tombstone in the same step, so a start that arrives late cannot forward.
    if ((await stub.claimIfOrphan()) !== "orphan") continue;
    const settled = await settle(env.DB, {
      taskId: task.id,
      status: "FAILURE",
      refund: true,
      refundSteps: ["submit"],
      reason: "orphaned",
      failReason: "the task was never started; its charge was refunded",
      upstreamTaskId: null,
      at: now,
    });
    if (settled) refunded++;
    logEvent("orphan_charge_refunded", { task_id: task.id, tenant_id: task.tenant_id, first_time: settled });
  }
  return refunded;
}

export interface CustodyBreach {
  check: "charge_without_task_record" | "charge_without_upstream_id";
  task_id: string;
  tenant_id: string;
  detail: string;
}

/** Open charges older than the bound whose object never recorded the task or never got an upstream id. */
export async function custodyBreaches(env: Env, now: number): Promise<CustodyBreach[]> {
  const candidates = await openTasksAdmittedBefore(env.DB, now - ORPHAN_AFTER_MS, BATCH);
  const found = await Promise.all(
    candidates.map(async (task): Promise<CustodyBreach | null> => {
      const custody = await env.TASKS.get(env.TASKS.idFromName(task.id)).custody();
      const age = `admitted ${Math.round((now - task.created_at) / 1000)} s ago`;
      if (!custody.recorded) {
        return {
          check: "charge_without_task_record",
          task_id: task.id,
          tenant_id: task.tenant_id,
          detail: age,
        };
      }
      // A task queued or waiting on its lead has no upstream id yet by design; past the bound it is a breach.
      if (!custody.upstreamConfirmed) {
        return {
          check: "charge_without_upstream_id",
          task_id: task.id,
          tenant_id: task.tenant_id,
          detail: `${age}, status ${custody.status}`,
        };
      }
      return null;
    }),
  );
  return found.filter((b): b is CustodyBreach => b !== null);
}
