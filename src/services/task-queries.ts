import { Lru } from "../domain/lru";
import type { TaskViewShape } from "../domain/task-view";
import type { TaskQueryAnswer } from "../durable/task/contract";
import type { Env } from "../env";

/**
 * A tenant's task query. The task's own Durable Object answers; a view it calls final (a
 * terminal task with nothing left to settle or watch, so nothing can change it) is kept on
 * the isolate for as long as a key is (KEY_CACHE_SECONDS), so a client that keeps polling a
 * finished task costs no object request and no object CPU. The one change a kept view can
 * miss is the task's deletion at the end of its retention: an isolate may answer it for at
 * most that long after.
 *
 * Bounded: at most FINAL_VIEWS_KEPT views (a view is a few KB) in least-recently-used order,
 * keyed by tenant, task and shape, so a tenant never sees another's view.
 */
export const FINAL_VIEWS_KEPT = 2_000;
const finalViews = new Lru<{ view: Record<string, unknown>; until: number }>(FINAL_VIEWS_KEPT);

/** For tests: the next query asks the object again. */
export function forgetFinalViews(): void {
  finalViews.clear();
}

export async function queryTask(
  env: Pick<Env, "TASKS">,
  request: { tenantId: string; taskId: string; shape: TaskViewShape; keepMs: number },
  now = Date.now(),
): Promise<Record<string, unknown> | null> {
  const { tenantId, taskId, shape, keepMs } = request;
  const key = `${tenantId} ${taskId} ${shape}`;
  const kept = finalViews.get(key);
  if (kept && kept.until > now) return kept.view;
  // RPC's types cannot carry `unknown` values: the answer is the object's TaskQueryAnswer.
  const stub = env.TASKS.get(env.TASKS.idFromName(taskId));
  const answer = (await stub.query(tenantId, shape)) as TaskQueryAnswer | null;
  if (!answer) return null;
  if (answer.final && keepMs > 0) finalViews.set(key, { view: answer.view, until: now + keepMs });
  return answer.view;
}
