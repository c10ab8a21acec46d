import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { TaskClock } from "../../../src/durable/task/clock";
import { Forwarding } from "../../../src/durable/task/forwarding";
import { TaskLifecycle } from "../../../src/durable/task/lifecycle";
import { TaskSchema } from "../../../src/durable/task/storage-schema";
import type { TaskObject } from "../../../src/durable/task-object";
import { configFrom } from "../../../src/env";
import { admittedTask } from "../../db/money-helpers";
import { tenantWithKey } from "../../helpers";

const PRICE = 54_048;

function withForwarding<T>(
  run: (forwarding: Forwarding, lifecycle: TaskLifecycle, clock: TaskClock) => Promise<T>,
) {
  const stub = env.TASKS.get(env.TASKS.idFromName(`forwarding-${crypto.randomUUID()}`));
  return runInDurableObject(stub, (_o: TaskObject, state) => {
    const clock = new TaskClock();
    const config = configFrom(env);
    let forwarding: Forwarding;
    const lifecycle = new TaskLifecycle(state.storage, new TaskSchema(state.storage), env.DB, clock, config, {
      changed: () => {},
      ended: () => {},
      arm: () => {},
      poll: (record) => forwarding.poll(record),
    });
    forwarding = new Forwarding(env, config, clock, lifecycle, state.storage);
    return run(forwarding, lifecycle, clock);
  });
}

describe("Forwarding", () => {
  it("a forward that never reported back (evicted mid-call) is refunded by the watchdog, once", async () => {
    const t = await tenantWithKey();
    const taskId = await admittedTask(t, PRICE);
    await withForwarding(async (forwarding, lifecycle, clock) => {
      // Recorded as `start` does before forwarding; then the instance that forwarded is gone.
      lifecycle.create(
        {
          meta: {
            taskId,
            tenantId: t.tenantId,
            keyId: t.keyId,
            action: "imagine",
            parentTaskId: null,
            upstreamParentId: null,
            upstreamTaskId: null,
            costMicros: PRICE,
            prompt: "lost",
            metadata: null,
          },
          submitOutcome: null,
        },
        clock.now() + 1_000,
        clock.now(),
      );
      expect(forwarding.attachmentFor("task_sibling")).toBeNull();
      expect(await forwarding.watch(lifecycle.record()!, clock.now())).toBe(true);
      expect(lifecycle.record()?.state.status).toBe("FAILURE");
      expect(lifecycle.record()?.submitOutcome).toMatchObject({
        ok: false,
        error: { code: "upstream_timeout" },
      });
      // Asked again (a duplicate alarm), it has nothing more to do.
      expect(await forwarding.watch(lifecycle.record()!, clock.now())).toBe(false);
      // A sibling asking this lead now learns there is no job for it.
      expect(forwarding.attachmentFor("task_sibling")).toMatchObject({ ok: false });
    });
    const refunds = await env.DB.prepare(
      "SELECT COUNT(*) AS n FROM ledger WHERE task_id = ?1 AND kind = 'refund'",
    )
      .bind(taskId)
      .first<{ n: number }>();
    expect(refunds?.n).toBe(1);
  });

  it("a start after the orphan sweep's tombstone does not forward and says the charge was refunded", async () => {
    await withForwarding(async (forwarding, lifecycle) => {
      lifecycle.tombstone();
      const outcome = await forwarding.start(
        {
          meta: {
            taskId: "task_late",
            tenantId: "t",
            keyId: "k",
            action: "imagine",
            parentTaskId: null,
            upstreamParentId: null,
            upstreamTaskId: null,
            costMicros: 0,
            prompt: null,
            metadata: null,
          },
          requestId: "req_test",
        },
        "{}",
      );
      expect(outcome).toMatchObject({ ok: false, error: { status: 504, code: "upstream_timeout" } });
      expect(lifecycle.record()).toBeNull();
    });
  });
});
