import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { SseBroadcaster } from "../../../src/durable/sse-broadcaster";
import { EventLog, type TenantFeed } from "../../../src/durable/task/event-log";
import { TaskSchema } from "../../../src/durable/task/storage-schema";
import type { TaskObject } from "../../../src/durable/task-object";

/** An event log over a fresh task object's storage, its schema made as a recorded task's is. */
function withLog<T>(run: (log: EventLog) => Promise<T>) {
  const stub = env.TASKS.get(env.TASKS.idFromName(`event-log-${crypto.randomUUID()}`));
  return runInDurableObject(stub, (_o: TaskObject, state) => {
    new TaskSchema(state.storage).ensure();
    return run(new EventLog(state.storage.sql, new SseBroadcaster()));
  });
}

/** A tenant feed that records what it got; its first publish is slow, its second fails. */
function recordingFeed() {
  const got: string[] = [];
  let calls = 0;
  const feed: TenantFeed = {
    async publish(_taskId, _at, data) {
      calls++;
      if (calls === 1) await new Promise((resolve) => setTimeout(resolve, 30));
      if (calls === 2) throw new Error("hub unavailable");
      got.push(String(data.status));
    },
  };
  return { feed, got };
}

const request = (lastEventId?: number) =>
  new Request("https://task/events", {
    headers: lastEventId === undefined ? {} : { "last-event-id": String(lastEventId) },
  });

describe("EventLog", () => {
  it("keeps every change in order and replays what came after a seq", async () => {
    await withLog(async (log) => {
      const { feed } = recordingFeed();
      const seqs = ["NOT_START", "IN_PROGRESS", "SUCCESS"].map((status, i) =>
        log.append(1_000 + i, { status }, "task_a", feed),
      );
      expect(seqs).toEqual([1, 2, 3]);
      expect(log.after(1)).toEqual([
        { seq: 2, at: 1_001, data: { status: "IN_PROGRESS" } },
        { seq: 3, at: 1_002, data: { status: "SUCCESS" } },
      ]);
      expect(log.after(3)).toEqual([]);
    });
  });

  it("feeds the tenant's hub one change after another; a failed publish does not stop the next", async () => {
    await withLog(async (log) => {
      const { feed, got } = recordingFeed();
      for (const status of ["NOT_START", "IN_PROGRESS", "SUCCESS"]) log.append(1, { status }, "task_b", feed);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(got).toEqual(["NOT_START", "SUCCESS"]);
    });
  });

  it("a new subscriber gets the current view; a finished task's reconnect with nothing new gets 204", async () => {
    await withLog(async (log) => {
      const { feed } = recordingFeed();
      log.append(1, { status: "NOT_START" }, "task_c", feed);
      log.append(2, { status: "SUCCESS" }, "task_c", feed);
      const fresh = log.subscribe(request(), { status: "SUCCESS", progress: "100%" }, true);
      expect(fresh.status).toBe(200);
      const text = await fresh.text();
      expect(text).toContain("id: 2\n");
      expect(text).toContain('"progress":"100%"');
      const resumed = await log.subscribe(request(1), { status: "SUCCESS" }, true).text();
      expect(resumed).toContain("id: 2\n");
      expect(resumed).not.toContain("id: 1\n");
      expect(log.subscribe(request(2), { status: "SUCCESS" }, true).status).toBe(204);
      expect(log.subscriberCount).toBe(0);
    });
  });
});
