/**
 * Failed deliveries are retried on the schedule, from the task object's alarm (running
 * the alarm = time jumps to the moment it was armed for); every attempt is recorded;
 * after the schedule the delivery is failed; an operator can replay any delivery.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  createDeliveries,
  createEndpoint,
  getDelivery,
  recordAttempt,
  settledDeliveryIds,
} from "../../src/db/webhooks";
import { RETRY_SCHEDULE_SECONDS } from "../../src/domain/webhooks";
import { afterAttempt, afterReplay } from "../../src/webhooks/sender";
import { runAlarmWhenDue } from "../durable/clock-helpers";
import { call, driveToEnd, submit, taskStub, tenantWithKey } from "../helpers";
import { taskIdOf } from "../streams/sse";
import {
  deliveriesOf,
  expectSigned,
  failNext,
  newSink,
  received,
  registerAdmin,
  settledReceived,
  waitReceived,
} from "./hooks";

/** A tenant, a terminal endpoint on a fresh sink failing `failures` times, and one finished task. */
async function finishedTaskWithFailingSink(failures: number, status = 503) {
  const t = await tenantWithKey();
  const sink = newSink("retry");
  if (failures > 0) await failNext(sink.name, failures, status);
  const endpoint = await registerAdmin(t.tenantId, { url: sink.url });
  const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: `hook retry ${sink.name}` }));
  await driveToEnd(taskId, t.key);
  await waitReceived(sink.name, 1);
  return { t, sink, endpoint, taskId };
}

async function onlyDelivery(taskId: string) {
  const list = await deliveriesOf({ task_id: taskId });
  expect(list).toHaveLength(1);
  return list[0];
}

describe("webhook retries", () => {
  it("retries a failing endpoint with exponential backoff until it answers 2xx, recording each attempt", async () => {
    const { sink, endpoint, taskId } = await finishedTaskWithFailingSink(3);
    let delivery = await onlyDelivery(taskId);
    expect(delivery).toMatchObject({
      status: "pending",
      attempts: 1,
      last_status: 503,
      last_error: "HTTP 503",
    });

    for (let attempt = 1; attempt <= 3; attempt++) {
      // Still failing: the next attempt is due after the scheduled delay from this one.
      const last = delivery.attempt_log.at(-1);
      expect(delivery.attempt_log).toHaveLength(attempt);
      expect(last).toMatchObject({ status: 503, error: "HTTP 503", replay: false });
      expect(Date.parse(delivery.next_attempt_at) - Date.parse(last.attempted_at)).toBe(
        RETRY_SCHEDULE_SECONDS[attempt - 1]! * 1000,
      );
      expect(await received(sink.name)).toHaveLength(attempt);
      // Time jumps to the retry.
      expect(await runAlarmWhenDue(taskStub(taskId))).toBe(true);
      delivery = await onlyDelivery(taskId);
    }
    expect(delivery).toMatchObject({
      status: "delivered",
      attempts: 4,
      next_attempt_at: null,
      last_status: 200,
      last_error: null,
    });
    expect(delivery.delivered_at).toEqual(expect.any(String));
    expect(delivery.attempt_log.map((a: { status: number }) => a.status)).toEqual([503, 503, 503, 200]);
    const attemptTimes = delivery.attempt_log.map((a: { attempted_at: string }) =>
      Date.parse(a.attempted_at),
    );
    expect([...attemptTimes].sort((a, b) => a - b)).toEqual(attemptTimes);

    // Four requests, one message: the same webhook-id each time, each freshly signed.
    const requests = await settledReceived(sink.name);
    expect(requests).toHaveLength(4);
    expect(new Set(requests.map((r) => r.headers["webhook-id"]))).toEqual(new Set([delivery.id]));
    expect(new Set(requests.map((r) => r.body)).size).toBe(1);
    for (const request of requests)
      expect((await expectSigned(request, endpoint.secret)).type).toBe("task.succeeded");

    // Delivered: no alarm brings it back.
    await runAlarmWhenDue(taskStub(taskId));
    expect(await settledReceived(sink.name)).toHaveLength(4);
  });

  it("any non-2xx answer counts as a failure and is retried (here a 404)", async () => {
    const t = await tenantWithKey();
    // Not a sink: an unknown simulator route answers 404.
    const endpoint = await registerAdmin(t.tenantId, { url: "https://hooks.test/_sim/no-such-sink-route" });
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "hook 404" }));
    await driveToEnd(taskId, t.key);
    let delivery: any;
    for (let i = 0; i < 100; i++) {
      delivery = (await deliveriesOf({ task_id: taskId }))[0];
      if (delivery?.attempts >= 1) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(delivery).toMatchObject({ endpoint_id: endpoint.id, status: "pending", last_status: 404 });
    expect(delivery.next_attempt_at).not.toBeNull();
  });

  it("gives up after the schedule: status failed, every attempt logged, no more tries", async () => {
    const attempts = RETRY_SCHEDULE_SECONDS.length + 1;
    const { sink, taskId } = await finishedTaskWithFailingSink(attempts + 5, 500);
    for (let i = 1; i < attempts; i++) {
      expect(await runAlarmWhenDue(taskStub(taskId))).toBe(true);
    }
    const delivery = await onlyDelivery(taskId);
    expect(delivery).toMatchObject({ status: "failed", attempts, next_attempt_at: null, last_status: 500 });
    expect(delivery.delivered_at).toBeNull();
    expect(delivery.attempt_log).toHaveLength(attempts);
    expect(delivery.attempt_log.every((a: { status: number }) => a.status === 500)).toBe(true);
    // Gaps between attempts follow the schedule (each attempt runs when its alarm says).
    expect(await received(sink.name)).toHaveLength(attempts);
    expect(await deliveriesOf({ task_id: taskId, status: "failed" })).toHaveLength(1);
    expect(await deliveriesOf({ task_id: taskId, status: "pending" })).toHaveLength(0);

    // No retry is left in the object: more alarms send nothing.
    await runAlarmWhenDue(taskStub(taskId));
    expect(await settledReceived(sink.name)).toHaveLength(attempts);
  });
});

describe("recording attempts", () => {
  it("an attempt that lands after the message was delivered does not undo it", async () => {
    const t = await tenantWithKey();
    const endpoint = (await createEndpoint(env.DB, {
      tenantId: t.tenantId,
      keyId: null,
      url: "https://hooks.test/x",
      events: "terminal",
    }))!;
    const [row] = await createDeliveries(
      env.DB,
      [endpoint],
      {
        messageKey: `race_${crypto.randomUUID()}`,
        taskId: "task_01KV52C0TEJSYZMCG0NCS4YWKK",
        eventType: "task.succeeded",
        payload: "{}",
      },
      Date.now(),
    );
    const at = Date.now();
    await recordAttempt(
      env.DB,
      row!.id,
      { status: 200, error: null, durationMs: 3, at },
      { status: "delivered", nextAttemptAt: null },
      true,
    );
    await recordAttempt(
      env.DB,
      row!.id,
      { status: 503, error: "HTTP 503", durationMs: 3, at: at + 1 },
      { status: "pending", nextAttemptAt: at + 30_000 },
    );
    const stored = await getDelivery(env.DB, row!.id);
    expect(stored).toMatchObject({
      status: "delivered",
      next_attempt_at: null,
      attempts: 2,
      delivered_at: at,
    });
    expect(await settledDeliveryIds(env.DB, [row!.id, "msg_unknown"])).toEqual(new Set([row!.id]));
    // A failed one too counts as settled; a pending one does not.
    const [open] = await createDeliveries(
      env.DB,
      [endpoint],
      {
        messageKey: `open_${crypto.randomUUID()}`,
        taskId: "task_01KV52C0TEJSYZMCG0NCS4YWKK",
        eventType: "task.updated",
        payload: "{}",
      },
      Date.now(),
    );
    expect(await settledDeliveryIds(env.DB, [open!.id])).toEqual(new Set());
    await recordAttempt(
      env.DB,
      open!.id,
      { status: 500, error: "HTTP 500", durationMs: 1, at },
      { status: "failed", nextAttemptAt: null },
    );
    expect(await settledDeliveryIds(env.DB, [open!.id])).toEqual(new Set([open!.id]));
  });
});

describe("replay", () => {
  it("re-sends a failed delivery now: same webhook-id, fresh signature, delivered, logged as a replay", async () => {
    const attempts = RETRY_SCHEDULE_SECONDS.length + 1;
    // Fails exactly through the whole schedule; the sink answers 200 afterwards.
    const { sink, endpoint, taskId } = await finishedTaskWithFailingSink(attempts);
    for (let i = 1; i < attempts; i++) await runAlarmWhenDue(taskStub(taskId));
    const failed = await onlyDelivery(taskId);
    expect(failed.status).toBe("failed");

    const res = await call("POST", `/admin/webhook-deliveries/${failed.id}/replay`, { admin: true });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({
      id: failed.id,
      status: "delivered",
      attempts: attempts + 1,
      last_status: 200,
      next_attempt_at: null,
    });
    expect(res.body.attempt_log).toHaveLength(attempts + 1);
    expect(res.body.attempt_log.at(-1)).toMatchObject({ status: 200, replay: true });
    expect(res.body.attempt_log.slice(0, -1).every((a: { replay: boolean }) => !a.replay)).toBe(true);

    const requests = await received(sink.name);
    expect(requests).toHaveLength(attempts + 1);
    const replayed = requests.at(-1)!;
    expect(replayed.headers["webhook-id"]).toBe(failed.id);
    expect(replayed.body).toBe(requests[0]!.body);
    await expectSigned(replayed, endpoint.secret);
    expect(await onlyDelivery(taskId)).toMatchObject({ status: "delivered" });
  });

  it("a replay that fails again leaves a failed delivery failed (with the attempt logged)", async () => {
    const attempts = RETRY_SCHEDULE_SECONDS.length + 1;
    const { sink, taskId } = await finishedTaskWithFailingSink(attempts + 1, 502);
    for (let i = 1; i < attempts; i++) await runAlarmWhenDue(taskStub(taskId));
    const failed = await onlyDelivery(taskId);
    const res = await call("POST", `/admin/webhook-deliveries/${failed.id}/replay`, { admin: true });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: "failed",
      attempts: attempts + 1,
      last_status: 502,
      next_attempt_at: null,
    });
    expect(res.body.attempt_log.at(-1)).toMatchObject({ status: 502, replay: true });
    // A replay never restarts the automatic retries.
    await runAlarmWhenDue(taskStub(taskId));
    expect(await settledReceived(sink.name)).toHaveLength(attempts + 1);
  });

  it("a delivered message can be replayed (a duplicate with the same webhook-id)", async () => {
    const { sink, endpoint, taskId } = await finishedTaskWithFailingSink(0);
    const delivered = await onlyDelivery(taskId);
    expect(delivered.status).toBe("delivered");
    const res = await call("POST", `/admin/webhook-deliveries/${delivered.id}/replay`, { admin: true });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "delivered", attempts: 2 });
    const requests = await received(sink.name);
    expect(requests.map((r) => r.headers["webhook-id"])).toEqual([delivered.id, delivered.id]);
    await expectSigned(requests[1]!, endpoint.secret);
  });

  it("a replay that succeeds while retries are pending ends them: the delivery stays delivered", async () => {
    const { sink, taskId } = await finishedTaskWithFailingSink(1);
    const pending = await onlyDelivery(taskId);
    expect(pending.status).toBe("pending");
    const res = await call("POST", `/admin/webhook-deliveries/${pending.id}/replay`, { admin: true });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "delivered", next_attempt_at: null });
    expect(await received(sink.name)).toHaveLength(2);

    // The endpoint breaks afterwards; the retry that was scheduled must not resend the
    // message nor turn the delivered message back into a pending or failed one.
    await failNext(sink.name, 50);
    for (let i = 0; i < 3; i++) await runAlarmWhenDue(taskStub(taskId));
    expect(await onlyDelivery(taskId)).toMatchObject({ status: "delivered", next_attempt_at: null });
    expect(await settledReceived(sink.name)).toHaveLength(2);
  });

  it("needs the admin token and an existing delivery", async () => {
    const { t, taskId } = await finishedTaskWithFailingSink(0);
    const delivery = await onlyDelivery(taskId);
    expect((await call("POST", `/admin/webhook-deliveries/${delivery.id}/replay`)).status).toBe(401);
    expect(
      (await call("POST", `/admin/webhook-deliveries/${delivery.id}/replay`, { key: t.key })).status,
    ).toBe(401);
    const missing = await call("POST", "/admin/webhook-deliveries/msg_nope/replay", { admin: true });
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe("not_found");
  });
});

describe("the retry policy (shared by the task's attempts and the operator's replay)", () => {
  const failedAt = (at: number) => ({ status: 503, error: "HTTP 503", durationMs: 5, at });
  const okAt = (at: number) => ({ status: 204, error: null, durationMs: 5, at });

  it("an automatic attempt: delivered on a 2xx, else the next on the schedule, then failed", () => {
    expect(afterAttempt(okAt(1_000), 1)).toEqual({ status: "delivered", nextAttemptAt: null });
    RETRY_SCHEDULE_SECONDS.forEach((seconds, i) => {
      expect(afterAttempt(failedAt(1_000), i + 1)).toEqual({
        status: "pending",
        nextAttemptAt: 1_000 + seconds * 1000,
      });
    });
    expect(afterAttempt(failedAt(1_000), RETRY_SCHEDULE_SECONDS.length + 1)).toEqual({
      status: "failed",
      nextAttemptAt: null,
    });
  });

  it("a replay delivers, or leaves the schedule as it was; it never revives a finished delivery", () => {
    expect(afterReplay(okAt(5), { status: "failed", next_attempt_at: null })).toEqual({
      status: "delivered",
      nextAttemptAt: null,
    });
    expect(afterReplay(failedAt(5), { status: "failed", next_attempt_at: null })).toEqual({
      status: "failed",
      nextAttemptAt: null,
    });
    expect(afterReplay(failedAt(5), { status: "delivered", next_attempt_at: null })).toEqual({
      status: "delivered",
      nextAttemptAt: null,
    });
    expect(afterReplay(failedAt(5), { status: "pending", next_attempt_at: 777 })).toEqual({
      status: "pending",
      nextAttemptAt: 777,
    });
    expect(afterReplay(failedAt(5), { status: "pending", next_attempt_at: null })).toEqual({
      status: "pending",
      nextAttemptAt: 5 + RETRY_SCHEDULE_SECONDS[0]! * 1000,
    });
  });
});
