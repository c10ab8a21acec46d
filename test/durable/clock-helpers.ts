/**
 * Time in TaskObject tests moves through the task's clock (never by rewriting its storage):
 * advance it to make a timer due, or run an alarm "when its time has come".
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import type { TaskObject } from "../../src/durable/task-object";

type TaskStub = DurableObjectStub<TaskObject>;

/** Moves the task's clock forward to `at` (on its own timeline), as if that much time had passed. */
export async function advanceClockTo(stub: TaskStub, at: number): Promise<void> {
  await runInDurableObject(stub, (o: TaskObject) => o.clock.advanceTo(at));
}

/** The task's clock now. */
export async function clockNow(stub: TaskStub): Promise<number> {
  return runInDurableObject(stub, (o: TaskObject) => o.clock.now());
}

/**
 * Runs the task's alarm as the runtime does once its time has come: the task's clock moves
 * to the moment the alarm was armed for, then the alarm runs. False if no alarm was set.
 */
export async function runAlarmWhenDue(stub: TaskStub): Promise<boolean> {
  await runInDurableObject(stub, async (o: TaskObject, state) => {
    const wallTime = await state.storage.getAlarm();
    if (wallTime !== null) o.clock.advanceBy(wallTime - Date.now());
  });
  return runDurableObjectAlarm(stub);
}
