import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { RETRY_SCHEDULE_SECONDS } from "../../../src/domain/webhooks";
import { TaskClock } from "../../../src/durable/task/clock";
import { hasTable, TaskSchema } from "../../../src/durable/task/storage-schema";
import { type OutboxHooks, WebhookOutbox } from "../../../src/durable/task/webhook-outbox";
import type { TaskObject } from "../../../src/durable/task-object";
import { admittedTask } from "../../db/money-helpers";
import { tenantWithKey } from "../../helpers";
import { deliveriesOf, expectSigned, failNext, newSink, received, registerAdmin } from "../../webhooks/hooks";
import { rowsCounted } from "../storage-rows";

interface OutboxParts {
  outbox: WebhookOutbox;
  schema: TaskSchema;
  storage: DurableObjectStorage;
  seen: { rearmed: number; backedOff: number };
}

/** An outbox over a fresh task object's storage; `inUse` as given (true: the tenant has endpoints). */
function withOutbox<T>(
  run: (parts: OutboxParts) => Promise<T>,
  options: { inUse?: boolean; clock?: TaskClock } = {},
) {
  const stub = env.TASKS.get(env.TASKS.idFromName(`outbox-${crypto.randomUUID()}`));
  return runInDurableObject(stub, (_o: TaskObject, state) => {
    const seen = { rearmed: 0, backedOff: 0 };
    const hooks: OutboxHooks = {
      backOff: () => void seen.backedOff++,
      rearm: () => void seen.rearmed++,
      inUse: () => options.inUse ?? true,
    };
    const schema = new TaskSchema(state.storage);
    const outbox = new WebhookOutbox(state.storage, schema, env.DB, options.clock ?? new TaskClock(), hooks);
    return run({ outbox, schema, storage: state.storage, seen });
  });
}

describe("WebhookOutbox", () => {
  it("fans a message out to the endpoint, retries on the schedule by the task's clock, then is empty", async () => {
    const t = await tenantWithKey();
    const sink = newSink("outbox");
    await failNext(sink.name, 1, 503);
    const endpoint = await registerAdmin(t.tenantId, { url: sink.url });
    const taskId = await admittedTask(t, 0);
    const task = { taskId, tenantId: t.tenantId, keyId: t.keyId };
    const clock = new TaskClock();

    await withOutbox(
      async ({ outbox, seen }) => {
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
        expect(seen).toEqual({ rearmed: 3, backedOff: 0 });
      },
      { clock },
    );

    const requests = await received(sink.name);
    expect(requests).toHaveLength(2);
    expect((await expectSigned(requests[1]!, endpoint.secret)).type).toBe("task.succeeded");
    const [delivery] = await deliveriesOf({ task_id: taskId });
    expect(delivery).toMatchObject({ status: "delivered", attempts: 2 });
  });

  it("a task without webhooks never reads the outbox, and its object holds no outbox table", async () => {
    await withOutbox(
      async ({ outbox, storage, seen }) => {
        const rows = rowsCounted(storage);
        expect(outbox.isEmpty()).toBe(true);
        expect(outbox.nextAttemptAt()).toBeNull();
        await outbox.pump(() => ({ taskId: "task_x", tenantId: "t", keyId: "k" }));
        expect(seen.rearmed).toBe(1);
        expect(rows()).toEqual({ rowsRead: 0, rowsWritten: 0 });
        expect(hasTable(storage, "outbox") || hasTable(storage, "deliveries")).toBe(false);
      },
      { inUse: false },
    );
  });

  it("after retention wiped the storage, a new message makes the tables again", async () => {
    await withOutbox(async ({ outbox, schema, storage }) => {
      outbox.enqueue(1, "SUBMITTED", Date.now(), { status: "SUBMITTED" });
      await storage.deleteAll();
      schema.wiped();
      outbox.enqueue(2, "SUCCESS", Date.now(), { status: "SUCCESS" });
      expect(outbox.isEmpty()).toBe(false);
    });
  });

  it("a pump whose task is gone does nothing and still re-arms", async () => {
    await withOutbox(async ({ outbox, seen }) => {
      outbox.enqueue(1, "SUCCESS", Date.now(), { status: "SUCCESS" });
      await outbox.pump(() => null);
      expect(outbox.isEmpty()).toBe(false);
      expect(seen.rearmed).toBe(1);
    });
  });
});
