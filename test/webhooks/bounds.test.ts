/**
 * Webhooks bounded: at most 20 active endpoints per tenant, a disabled endpoint's pending
 * retries stop, settled deliveries and their attempts are purged by the hourly cron after
 * WEBHOOK_RETENTION_DAYS (index-backed), and a message body is at most 256 KiB.
 */
import {
  createExecutionContext,
  createScheduledController,
  env,
  waitOnExecutionContext,
} from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  createDeliveries,
  createEndpoint,
  deleteEndpoint,
  purgeWebhookHistory,
  recordAttempt,
  settledDeliveryIds,
} from "../../src/db/webhooks";
import {
  MAX_WEBHOOK_ENDPOINTS_PER_TENANT,
  MAX_WEBHOOK_PAYLOAD_BYTES,
  webhookPayload,
} from "../../src/domain/webhooks";
import worker from "../../src/index";
import { planOf, recordingDb } from "../db/plans";
import { runAlarmWhenDue } from "../durable/clock-helpers";
import { call, driveToEnd, submit, taskStub, tenantWithKey } from "../helpers";
import { taskIdOf } from "../streams/sse";
import { deliveriesOf, failNext, newSink, registerAdmin, settledReceived, waitReceived } from "./hooks";

const DAY = 86_400_000;

describe("at most 20 active endpoints per tenant", () => {
  it("the 21st is a 409 webhook_endpoint_limit, on both sides; disabling one frees a slot", async () => {
    expect(MAX_WEBHOOK_ENDPOINTS_PER_TENANT).toBe(20);
    const t = await tenantWithKey();
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const res = await call("POST", "/v1/webhooks", { key: t.key, body: { url: newSink("cap").url } });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      ids.push(res.body.id);
    }
    const tenantSide = await call("POST", "/v1/webhooks", { key: t.key, body: { url: newSink("cap").url } });
    expect(tenantSide.status).toBe(409);
    expect(tenantSide.body.error).toMatchObject({ code: "webhook_endpoint_limit", type: "conflict_error" });
    expect(tenantSide.body.error.message).toMatch(/at most 20/);
    const adminSide = await call("POST", `/admin/tenants/${t.tenantId}/webhooks`, {
      admin: true,
      body: { url: newSink("cap").url },
    });
    expect(adminSide.status).toBe(409);
    expect(adminSide.body.error.code).toBe("webhook_endpoint_limit");
    expect((await call("GET", "/v1/webhooks", { key: t.key })).body.data).toHaveLength(20);

    expect((await call("DELETE", `/v1/webhooks/${ids[0]}`, { key: t.key })).status).toBe(204);
    const again = await call("POST", "/v1/webhooks", { key: t.key, body: { url: newSink("cap").url } });
    expect(again.status).toBe(201);
    expect((await call("POST", "/v1/webhooks", { key: t.key, body: { url: newSink().url } })).status).toBe(
      409,
    );
    // Another tenant is not affected.
    const other = await tenantWithKey();
    expect(
      (await call("POST", "/v1/webhooks", { key: other.key, body: { url: newSink().url } })).status,
    ).toBe(201);
  });

  it("concurrent creates cannot pass the cap", async () => {
    const t = await tenantWithKey();
    const results = await Promise.all(
      Array.from({ length: 30 }, () =>
        call("POST", "/v1/webhooks", { key: t.key, body: { url: newSink("race").url } }),
      ),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(20);
    expect(results.filter((r) => r.status === 409)).toHaveLength(10);
    const { n } = (await env.DB.prepare(
      "SELECT COUNT(*) AS n FROM webhook_endpoints WHERE tenant_id = ?1 AND status = 'active'",
    )
      .bind(t.tenantId)
      .first<{ n: number }>())!;
    expect(n).toBe(20);
  });
});

describe("a disabled endpoint's retries stop", () => {
  async function failingDelivery() {
    const t = await tenantWithKey();
    const sink = newSink("disabled");
    await failNext(sink.name, 50);
    const endpoint = await registerAdmin(t.tenantId, { url: sink.url });
    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: `hook disabled ${sink.name}` }));
    await driveToEnd(taskId, t.key);
    await waitReceived(sink.name, 1);
    const [delivery] = await deliveriesOf({ task_id: taskId });
    expect(delivery).toMatchObject({ status: "pending", attempts: 1, last_status: 503 });
    return { t, sink, endpoint, taskId, delivery };
  }

  it("DELETE fails its pending deliveries at once; the scheduled retry sends nothing", async () => {
    const { t, sink, endpoint, taskId, delivery } = await failingDelivery();
    expect((await call("DELETE", `/v1/webhooks/${endpoint.id}`, { key: t.key })).status).toBe(204);
    expect((await deliveriesOf({ task_id: taskId }))[0]).toMatchObject({
      id: delivery.id,
      status: "failed",
      next_attempt_at: null,
      last_error: "endpoint disabled",
      attempts: 1,
    });
    for (let i = 0; i < 3; i++) await runAlarmWhenDue(taskStub(taskId));
    expect(await settledReceived(sink.name)).toHaveLength(1);
    expect((await deliveriesOf({ task_id: taskId }))[0]).toMatchObject({ status: "failed", attempts: 1 });
  });

  it("an endpoint disabled behind the delivery's back (a race with the fan-out) is caught by the retry check", async () => {
    const { sink, endpoint, taskId, delivery } = await failingDelivery();
    // Only the endpoint row changes, as if the disable had raced the delivery's creation.
    await env.DB.prepare("UPDATE webhook_endpoints SET status = 'disabled' WHERE id = ?1")
      .bind(endpoint.id)
      .run();
    expect((await deliveriesOf({ task_id: taskId }))[0].status).toBe("pending");
    for (let i = 0; i < 3; i++) await runAlarmWhenDue(taskStub(taskId));
    expect(await settledReceived(sink.name)).toHaveLength(1);
    expect((await deliveriesOf({ task_id: taskId }))[0]).toMatchObject({
      id: delivery.id,
      status: "failed",
      last_error: "endpoint disabled",
      attempts: 1,
      next_attempt_at: null,
    });
  });

  it("settledDeliveryIds: pending of an active endpoint is not settled, of a disabled one it is (and failed)", async () => {
    const t = await tenantWithKey();
    const active = (await createEndpoint(env.DB, {
      tenantId: t.tenantId,
      keyId: null,
      url: "https://hooks.test/a",
      events: "terminal",
    }))!;
    const doomed = (await createEndpoint(env.DB, {
      tenantId: t.tenantId,
      keyId: null,
      url: "https://hooks.test/b",
      events: "terminal",
    }))!;
    const [a, b] = await createDeliveries(
      env.DB,
      [active, doomed],
      {
        messageKey: `s_${crypto.randomUUID()}`,
        taskId: "task_x",
        eventType: "task.succeeded",
        payload: "{}",
      },
      Date.now(),
    );
    expect(await settledDeliveryIds(env.DB, [a!.id, b!.id])).toEqual(new Set());
    expect(await deleteEndpoint(env.DB, t.tenantId, doomed.id)).toBe(true);
    expect(await settledDeliveryIds(env.DB, [a!.id, b!.id, "msg_unknown"])).toEqual(new Set([b!.id]));
    const row = await env.DB.prepare("SELECT status, last_error FROM webhook_deliveries WHERE id = ?1")
      .bind(b!.id)
      .first();
    expect(row).toEqual({ status: "failed", last_error: "endpoint disabled" });
    // Another tenant cannot disable it.
    expect(await deleteEndpoint(env.DB, "ten_other", active.id)).toBe(false);
  });
});

describe("purge after WEBHOOK_RETENTION_DAYS, by the hourly cron", () => {
  /** One delivery created `ageDays` ago with `status` and one attempt. */
  async function delivery(endpoint: { id: string; tenant_id: string }, ageDays: number, status: string) {
    const at = Date.now() - ageDays * DAY;
    const [row] = await createDeliveries(
      env.DB,
      [endpoint as never],
      {
        messageKey: `p_${crypto.randomUUID()}`,
        taskId: "task_purge",
        eventType: "task.succeeded",
        payload: "{}",
      },
      at,
    );
    await recordAttempt(
      env.DB,
      row!.id,
      { status: status === "delivered" ? 200 : 500, error: null, durationMs: 1, at: at + 1 },
      { status: status as never, nextAttemptAt: status === "pending" ? at + 5000 : null },
    );
    return row!.id;
  }

  async function exists(id: string) {
    const d = await env.DB.prepare("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE id = ?1")
      .bind(id)
      .first<{ n: number }>();
    const a = await env.DB.prepare("SELECT COUNT(*) AS n FROM webhook_attempts WHERE delivery_id = ?1")
      .bind(id)
      .first<{ n: number }>();
    return { delivery: d!.n, attempts: a!.n };
  }

  async function cron(overrides: Record<string, string> = {}) {
    const ctx = createExecutionContext();
    await worker.scheduled(
      createScheduledController({ cron: "17 * * * *", scheduledTime: Date.now() }),
      { ...env, ...overrides },
      ctx,
    );
    await waitOnExecutionContext(ctx);
  }

  it("deletes settled deliveries and their attempts older than 30 days, keeps the rest", async () => {
    const t = await tenantWithKey();
    const endpoint = (await createEndpoint(env.DB, {
      tenantId: t.tenantId,
      keyId: null,
      url: "https://hooks.test/purge",
      events: "terminal",
    }))!;
    const oldDelivered = await delivery(endpoint, 31, "delivered");
    const oldFailed = await delivery(endpoint, 45, "failed");
    const oldPending = await delivery(endpoint, 31, "pending");
    const recent = await delivery(endpoint, 29, "delivered");
    const fresh = await delivery(endpoint, 0, "failed");

    await cron();

    expect(await exists(oldDelivered)).toEqual({ delivery: 0, attempts: 0 });
    expect(await exists(oldFailed)).toEqual({ delivery: 0, attempts: 0 });
    // Pending: a task object may still retry it.
    expect(await exists(oldPending)).toEqual({ delivery: 1, attempts: 1 });
    expect(await exists(recent)).toEqual({ delivery: 1, attempts: 1 });
    expect(await exists(fresh)).toEqual({ delivery: 1, attempts: 1 });

    // WEBHOOK_RETENTION_DAYS is configurable.
    await cron({ WEBHOOK_RETENTION_DAYS: "7" });
    expect(await exists(recent)).toEqual({ delivery: 0, attempts: 0 });
    expect(await exists(fresh)).toEqual({ delivery: 1, attempts: 1 });
  });

  it("purges in bounded batches", async () => {
    const t = await tenantWithKey();
    const endpoint = (await createEndpoint(env.DB, {
      tenantId: t.tenantId,
      keyId: null,
      url: "https://hooks.test/batches",
      events: "terminal",
    }))!;
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await delivery(endpoint, 400 + i, "delivered"));
    expect(await purgeWebhookHistory(env.DB, Date.now() - 399 * DAY, 2)).toBe(2);
    expect(await purgeWebhookHistory(env.DB, Date.now() - 399 * DAY, 2)).toBe(2);
    expect(await purgeWebhookHistory(env.DB, Date.now() - 399 * DAY, 2)).toBe(1);
    expect(await purgeWebhookHistory(env.DB, Date.now() - 399 * DAY, 2)).toBe(0);
    for (const id of ids) expect(await exists(id)).toEqual({ delivery: 0, attempts: 0 });
  });

  it("the purge, the disable and the retry check are index searches", async () => {
    const { db, statements } = recordingDb();
    await purgeWebhookHistory(db, Date.now() - 30 * DAY);
    await deleteEndpoint(db, "ten_x", "wh_x");
    await settledDeliveryIds(db, ["msg_a", "msg_b"]);
    expect(statements).toHaveLength(6);
    for (const statement of statements) {
      const plan = (await planOf(statement)).join(" | ");
      expect(plan, statement.sql).not.toMatch(
        /\bSCAN (webhook_deliveries|webhook_attempts|webhook_endpoints)\b/,
      );
      expect(plan, statement.sql).toMatch(/SEARCH/);
    }
    const [attempts, deliveries] = statements;
    expect((await planOf(attempts!)).join(" | ")).toMatch(/webhook_deliveries_by_time/);
    expect((await planOf(attempts!)).join(" | ")).toMatch(/webhook_attempts_by_delivery/);
    expect((await planOf(deliveries!)).join(" | ")).toMatch(/webhook_deliveries_by_time/);
    expect((await planOf(statements[3]!)).join(" | ")).toMatch(/webhook_deliveries_by_endpoint/);
  });
});

describe("payloads are at most 256 KiB", () => {
  it("a larger task view is sent truncated to its scalar fields", () => {
    const at = Date.parse("2026-01-02T03:04:05.006Z");
    const small = { id: "task_1", status: "SUCCESS", metadata: { a: 1 } };
    expect(JSON.parse(webhookPayload("task.succeeded", small, at))).toEqual({
      type: "task.succeeded",
      timestamp: "2026-01-02T03:04:05.006Z",
      data: small,
    });
    const big = {
      id: "task_1",
      status: "SUCCESS",
      progress: "100%",
      cost: 0.05,
      prompt: "p".repeat(5000),
      metadata: { blob: "x".repeat(300 * 1024) },
      image_urls: ["https://cdn.example/a.png"],
    };
    const payload = webhookPayload("task.succeeded", big, at);
    expect(new TextEncoder().encode(payload).byteLength).toBeLessThanOrEqual(MAX_WEBHOOK_PAYLOAD_BYTES);
    expect(JSON.parse(payload)).toEqual({
      type: "task.succeeded",
      timestamp: "2026-01-02T03:04:05.006Z",
      truncated: true,
      data: { id: "task_1", status: "SUCCESS", progress: "100%", cost: 0.05 },
    });
    // Multi-byte text counts in bytes.
    const wide = { id: "task_2", metadata: { text: "€".repeat(90 * 1024) } }; // 270 KiB of UTF-8
    expect(JSON.parse(webhookPayload("task.updated", wide, at)).truncated).toBe(true);
  });

  it("end to end: 300 KiB of metadata is refused before admission (16 KiB bound), so no payload nears the cap", async () => {
    const t = await tenantWithKey();
    const res = await submit(t.key, "imagine", {
      prompt: "big metadata",
      metadata: { blob: "x".repeat(300 * 1024) },
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: "invalid_request", field: "metadata" });
    const rows = await env.DB.prepare(
      "SELECT COUNT(*) AS n FROM ledger WHERE tenant_id = ?1 AND kind = 'charge'",
    )
      .bind(t.tenantId)
      .first<{ n: number }>();
    expect(rows!.n).toBe(0);
  });
});
