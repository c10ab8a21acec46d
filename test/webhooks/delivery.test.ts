/**
 * Webhook deliveries end to end inside workerd: the task object fans each change out to
 * the tenant's endpoints and POSTs it, signed, to the simulator's sink.
 */
import { describe, expect, it } from "vitest";
import { verifyWebhook } from "../../src/domain/webhooks";
import { call, driveToEnd, submit, tenantWithKey } from "../helpers";
import { inpaintInModal, openTaskStream, taskIdOf, view } from "../streams/sse";
import {
  aboutTask,
  deliveriesOf,
  expectSigned,
  newSink,
  type Received,
  received,
  registerAdmin,
  settledReceived,
  waitReceived,
} from "./hooks";

async function secondKey(tenantId: string) {
  const res = await call("POST", `/admin/tenants/${tenantId}/keys`, {
    admin: true,
    body: { name: "second", rpm_limit: 10_000, max_inflight: 10_000 },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { keyId: res.body.id as string, key: res.body.key as string };
}

describe("webhook delivery", () => {
  it("POSTs the terminal event, signed per Standard Webhooks over the exact body it sent", async () => {
    const t = await tenantWithKey();
    const sink = newSink("signed");
    const endpoint = await registerAdmin(t.tenantId, { url: sink.url });
    expect(endpoint.events).toBe("terminal");
    expect(endpoint.secret).toMatch(/^whsec_/);
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "hook signed" }));
    const final = await driveToEnd(taskId, t.key);

    const [request] = await waitReceived(sink.name, 1);
    expect(request!.headers["content-type"]).toMatch(/^application\/json/);
    const payload = await expectSigned(request!, endpoint.secret);
    expect(payload.type).toBe("task.succeeded");
    expect(payload.data).toEqual(final);
    expect(Date.parse(payload.timestamp)).toBeGreaterThan(0);
    expect(request!.headers["webhook-id"]).toBe(`msg_${taskId.slice(5)}_000002_${endpoint.id.slice(3)}`);

    // Tamper checks: one changed byte of the body, another id or timestamp, another secret.
    const now = Math.floor(Date.now() / 1000);
    const headers = {
      id: request!.headers["webhook-id"]!,
      timestamp: request!.headers["webhook-timestamp"]!,
      signature: request!.headers["webhook-signature"]!,
    };
    const tampered = request!.body.replace('"SUCCESS"', '"FAILURE"');
    expect(tampered).not.toBe(request!.body);
    expect(await verifyWebhook(endpoint.secret, headers, tampered, now)).toBe(false);
    expect(
      await verifyWebhook(endpoint.secret, { ...headers, id: `${headers.id}x` }, request!.body, now),
    ).toBe(false);
    expect(
      await verifyWebhook(
        endpoint.secret,
        { ...headers, timestamp: String(Number(headers.timestamp) - 1) },
        request!.body,
        now,
      ),
    ).toBe(false);
    const other = await registerAdmin(t.tenantId, { url: newSink("other").url });
    expect(await verifyWebhook(other.secret, headers, request!.body, now)).toBe(false);

    // Exactly one delivery, recorded as delivered with its one attempt.
    expect(await settledReceived(sink.name)).toHaveLength(1);
    const [delivery] = await deliveriesOf({ task_id: taskId });
    expect(delivery).toMatchObject({
      id: headers.id,
      endpoint_id: endpoint.id,
      tenant_id: t.tenantId,
      task_id: taskId,
      event_type: "task.succeeded",
      status: "delivered",
      attempts: 1,
      next_attempt_at: null,
      last_status: 200,
      last_error: null,
    });
    expect(delivery.attempt_log).toHaveLength(1);
    expect(delivery.attempt_log[0]).toMatchObject({ status: 200, error: null, replay: false });
  });

  it("signs with a secret the tenant chose", async () => {
    const t = await tenantWithKey();
    const sink = newSink("own-secret");
    const secret = `whsec_${btoa("0123456789abcdef0123456789")}`;
    const endpoint = await registerAdmin(t.tenantId, { url: sink.url, secret });
    expect(endpoint.secret).toBe(secret);
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "hook own secret" }));
    await driveToEnd(taskId, t.key);
    const [request] = await waitReceived(sink.name, 1);
    await expectSigned(request!, secret);
  });

  it('terminal endpoints get only the end; "all" endpoints get every change, each equal to the stream\'s event', async () => {
    const t = await tenantWithKey();
    const terminal = newSink("terminal");
    const all = newSink("all");
    const terminalEndpoint = await registerAdmin(t.tenantId, { url: terminal.url, events: "terminal" });
    const allEndpoint = await registerAdmin(t.tenantId, { url: all.url, events: "all" });
    const task = await inpaintInModal(t.key, "hook all events");
    await task.modal();
    const final = await task.finish();

    // The parents (imagine, upscale) were delivered too: look at the inpaint task's messages.
    const ofTask = (list: Received[]) => list.filter(aboutTask(task.taskId));
    const everything = await waitReceived(all.name, 4, aboutTask(task.taskId));
    const payloads = await Promise.all(everything.map((r) => expectSigned(r, allEndpoint.secret)));
    const log = await (await openTaskStream(task.taskId, { key: t.key, query: "last_event_id=0" })).rest();
    // Deliveries of one task may overtake each other; each names its event by seq in its id.
    const bySeq = new Map(
      everything.map((r, i) => [Number(r.headers["webhook-id"]!.split("_")[2]), payloads[i]!] as const),
    );
    expect([...bySeq.keys()].sort()).toEqual([1, 2, 3, 4]);
    for (const event of log) {
      const payload = bySeq.get(Number(event.id))!;
      expect(payload.data).toEqual(JSON.parse(event.data));
      expect(payload.type).toBe(
        JSON.parse(event.data).status === "SUCCESS" ? "task.succeeded" : "task.updated",
      );
    }
    expect(bySeq.get(4)!.data).toEqual(final);

    const ends = ofTask(await settledReceived(terminal.name));
    expect(ends).toHaveLength(1);
    const end = await expectSigned(ends[0]!, terminalEndpoint.secret);
    expect(end.type).toBe("task.succeeded");
    expect(end.data).toEqual(final);
    // The parents' intermediate changes went only to "all" as well: terminal got one per task.
    expect((await received(terminal.name)).map((r) => JSON.parse(r.body).type)).toEqual(
      Array(3).fill("task.succeeded"),
    );
    expect(ofTask(await settledReceived(all.name))).toHaveLength(4);
  });

  it("a failed task is task.failed", async () => {
    const t = await tenantWithKey();
    const sink = newSink("failed");
    const endpoint = await registerAdmin(t.tenantId, { url: sink.url });
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "hook fails [sim:fail]" }));
    const final = await driveToEnd(taskId, t.key);
    expect(final.status).toBe("FAILURE");
    const [request] = await waitReceived(sink.name, 1);
    const payload = await expectSigned(request!, endpoint.secret);
    expect(payload.type).toBe("task.failed");
    expect(payload.data).toEqual(await view(taskId, t.key));
  });

  it("a per-key endpoint gets only that key's tasks; a tenant-wide one gets all; other tenants get none", async () => {
    const t = await tenantWithKey();
    const second = await secondKey(t.tenantId);
    const stranger = await tenantWithKey();
    const perKey = newSink("per-key");
    const wide = newSink("wide");
    const foreign = newSink("foreign");
    const perKeyEndpoint = await registerAdmin(t.tenantId, { url: perKey.url, key_id: t.keyId });
    expect(perKeyEndpoint.key_id).toBe(t.keyId);
    await registerAdmin(t.tenantId, { url: wide.url });
    await registerAdmin(stranger.tenantId, { url: foreign.url });

    const first = taskIdOf(await submit(t.key, "imagine", { prompt: "hook key one" }));
    const other = taskIdOf(await submit(second.key, "imagine", { prompt: "hook key two" }));
    await driveToEnd(first, t.key);
    await driveToEnd(other, second.key);

    await waitReceived(wide.name, 2);
    const wideTasks = (await settledReceived(wide.name)).map((r) => JSON.parse(r.body).data.id).sort();
    expect(wideTasks).toEqual([first, other].sort());
    const keyTasks = (await received(perKey.name)).map((r) => JSON.parse(r.body).data.id);
    expect(keyTasks).toEqual([first]);
    expect(await received(foreign.name)).toEqual([]);
  });

  it("a disabled endpoint gets nothing more", async () => {
    const t = await tenantWithKey();
    const sink = newSink("disabled");
    const endpoint = await registerAdmin(t.tenantId, { url: sink.url });
    const before = taskIdOf(await submit(t.key, "imagine", { prompt: "hook before disable" }));
    await driveToEnd(before, t.key);
    await waitReceived(sink.name, 1);
    const removed = await call("DELETE", `/admin/tenants/${t.tenantId}/webhooks/${endpoint.id}`, {
      admin: true,
    });
    expect(removed.status).toBe(204);
    const after = taskIdOf(await submit(t.key, "imagine", { prompt: "hook after disable" }));
    await driveToEnd(after, t.key);
    const got = await settledReceived(sink.name);
    expect(got.map((r) => JSON.parse(r.body).data.id)).toEqual([before]);
  });
});
