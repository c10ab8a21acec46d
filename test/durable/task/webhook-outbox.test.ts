import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { RETRY_SCHEDULE_SECONDS } from "../../../src/domain/webhooks";
import { countStorageRows, settleStorageRows } from "../../../src/durable/storage-row-counter";
import { TaskClock } from "../../../src/durable/task/clock";
import { hasTable } from "../../../src/durable/task/storage-schema";
import { WebhookOutbox } from "../../../src/durable/task/webhook-outbox";
import type { TaskObject } from "../../../src/durable/task-object";
import { admittedTask } from "../../db/money-helpers";
import { tenantWithKey } from "../../helpers";
import { deliveriesOf, expectSigned, failNext, newSink, received, registerAdmin } from "../../webhooks/hooks";

describe("WebhookOutbox", () => {
  it("fans a message out to the endpoint, retries on the schedule by the task's clock, then is empty", async () => {
    const t = await tenantWithKey();
    const sink = newSink("outbox");
    await failNext(sink.name, 1, 503);
    const endpoint = await registerAdmin(t.tenantId, { url: sink.url });
    const taskId = await admittedTask(t, 0);
    const task = { taskId, tenantId: t.tenantId, keyId: t.keyId };
    const stub = env.TASKS.get(env.TASKS.idFromName(`outbox-${crypto.randomUUID()}`));

    await runInDurableObject(stub, async (_o: TaskObject, state) => {
      const clock = new TaskClock();
      let rearmed = 0;
      let backedOff = 0;
      const outbox = new WebhookOutbox(state.storage, env.DB, clock, {
        backOff: () => backedOff++,
        rearm: () => rearmed++,
        inUse: () => true,
      });
      expect(outbox.isEmpty()).toBe(true);
      const at = clock.now();
      outbox.enqueue(1, "SUCCESS", at, { id: taskId, status: "SUCCESS" });
      expect(outbox.isEmpty()).toBe(false);

      await outbox.pump(() => task);
      // The first attempt failed (503): the retry is due on the schedule, on the task's clock.
      const retryAt = outbox.nextAttemptAt()!;
      expect(retryAt - at).toBeGreaterThanOrEqual(RETRY_SCHEDULE_SECONDS[0]! * 1000);
      await outbox.pump(() => task);
      expect(await received(sink.name)).toHaveLength(1); // not due yet: nothing resent

      clock.advanceTo(retryAt);
      await outbox.pump(() => task);
      expect(outbox.nextAttemptAt()).toBeNull();
      expect(outbox.isEmpty()).toBe(true);
      expect(rearmed).toBe(3);
      expect(backedOff).toBe(0);
    });

    const requests = await received(sink.name);
    expect(requests).toHaveLength(2);
    expect((await expectSigned(requests[1]!, endpoint.secret)).type).toBe("task.succeeded");
    const [delivery] = await deliveriesOf({ task_id: taskId });
    expect(delivery).toMatchObject({ status: "delivered", attempts: 2 });
  });

  it("a task without webhooks never reads the outbox, and its object holds no outbox table", async () => {
    const stub = env.TASKS.get(env.TASKS.idFromName(`outbox-${crypto.randomUUID()}`));
    await runInDurableObject(stub, async (_o: TaskObject, state) => {
      const rows = { rowsRead: 0, rowsWritten: 0 };
      countStorageRows(state.storage, rows);
      let rearmed = 0;
      const outbox = new WebhookOutbox(state.storage, env.DB, new TaskClock(), {
        backOff: () => {},
        rearm: () => rearmed++,
        inUse: () => false,
      });
      expect(outbox.isEmpty()).toBe(true);
      expect(outbox.nextAttemptAt()).toBeNull();
      await outbox.pump(() => ({ taskId: "task_x", tenantId: "t", keyId: "k" }));
      expect(rearmed).toBe(1);
      settleStorageRows();
      expect(rows).toEqual({ rowsRead: 0, rowsWritten: 0 });
      expect(hasTable(state.storage, "outbox") || hasTable(state.storage, "deliveries")).toBe(false);
    });
  });

  it("after retention wiped the storage, a new message makes the tables again", async () => {
    const stub = env.TASKS.get(env.TASKS.idFromName(`outbox-${crypto.randomUUID()}`));
    await runInDurableObject(stub, async (_o: TaskObject, state) => {
      const outbox = new WebhookOutbox(state.storage, env.DB, new TaskClock(), {
        backOff: () => {},
        rearm: () => {},
        inUse: () => true,
      });
      outbox.enqueue(1, "SUBMITTED", Date.now(), { status: "SUBMITTED" });
      await state.storage.deleteAll();
      outbox.wiped();
      outbox.enqueue(2, "SUCCESS", Date.now(), { status: "SUCCESS" });
      expect(outbox.isEmpty()).toBe(false);
    });
  });

  it("a pump whose task is gone does nothing and still re-arms", async () => {
    const stub = env.TASKS.get(env.TASKS.idFromName(`outbox-${crypto.randomUUID()}`));
    await runInDurableObject(stub, async (_o: TaskObject, state) => {
      let rearmed = 0;
      const outbox = new WebhookOutbox(state.storage, env.DB, new TaskClock(), {
        backOff: () => {},
        rearm: () => rearmed++,
        inUse: () => true,
      });
      outbox.enqueue(1, "SUCCESS", Date.now(), { status: "SUCCESS" });
      await outbox.pump(() => null);
      expect(outbox.isEmpty()).toBe(false);
      expect(rearmed).toBe(1);
    });
  });
});
