/**
 * Managing endpoints: the tenant side (/v1/webhooks with the sub-key) and the operator
 * side (/admin/tenants/{id}/webhooks), URL rules (tests do not run in development, so
 * loopback is refused too), and the delivery log (/admin/webhook-deliveries).
 */
import { describe, expect, it } from "vitest";
import { call, driveToEnd, submit, tenantWithKey } from "../helpers";
import { taskIdOf } from "../streams/sse";
import { deliveriesOf, expectSigned, newSink, registerAdmin, waitReceived } from "./hooks";

function expectError(res: { status: number; body: any }, status: number, code: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body.error.code, JSON.stringify(res.body)).toBe(code);
}

const ENDPOINT_KEYS = ["created_at", "events", "id", "key_id", "status", "tenant_id", "url"];

describe("/v1/webhooks (tenant side)", () => {
  it("registers an endpoint (secret shown once), lists it without the secret, and its deliveries are signed with it", async () => {
    const t = await tenantWithKey();
    const sink = newSink("tenant-side");
    const created = await call("POST", "/v1/webhooks", { key: t.key, body: { url: sink.url } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(Object.keys(created.body).sort()).toEqual([...ENDPOINT_KEYS, "secret"].sort());
    expect(created.body).toMatchObject({
      tenant_id: t.tenantId,
      key_id: null,
      url: sink.url,
      events: "terminal",
      status: "active",
    });
    expect(created.body.id).toMatch(/^wh_/);
    expect(created.body.secret).toMatch(/^whsec_/);
    expect(Date.parse(created.body.created_at)).toBeGreaterThan(0);

    const listed = await call("GET", "/v1/webhooks", { key: t.key });
    expect(listed.status).toBe(200);
    expect(listed.body.data).toHaveLength(1);
    expect(Object.keys(listed.body.data[0]).sort()).toEqual(ENDPOINT_KEYS.sort());
    expect(JSON.stringify(listed.body)).not.toContain(created.body.secret);

    const taskId = taskIdOf(await submit(t.key, "imagine", { prompt: "tenant side hook" }));
    await driveToEnd(taskId, t.key);
    const [request] = await waitReceived(sink.name, 1);
    expect((await expectSigned(request!, created.body.secret)).data.id).toBe(taskId);
  });

  it("only ever shows and changes the caller's own tenant's endpoints", async () => {
    const a = await tenantWithKey();
    const b = await tenantWithKey();
    const mine = await call("POST", "/v1/webhooks", {
      key: a.key,
      body: { url: newSink("a").url, events: "all" },
    });
    const theirs = await call("POST", "/v1/webhooks", { key: b.key, body: { url: newSink("b").url } });
    expect(mine.status).toBe(201);
    expect(mine.body.events).toBe("all");
    expect(theirs.status).toBe(201);

    const listA = await call("GET", "/v1/webhooks", { key: a.key });
    expect(listA.body.data.map((e: { id: string }) => e.id)).toEqual([mine.body.id]);

    expectError(await call("DELETE", `/v1/webhooks/${theirs.body.id}`, { key: a.key }), 404, "not_found");
    const listB = await call("GET", "/v1/webhooks", { key: b.key });
    expect(listB.body.data[0]).toMatchObject({ id: theirs.body.id, status: "active" });

    const removed = await call("DELETE", `/v1/webhooks/${mine.body.id}`, { key: a.key });
    expect(removed.status).toBe(204);
    const after = await call("GET", "/v1/webhooks", { key: a.key });
    expect(after.body.data[0]).toMatchObject({ id: mine.body.id, status: "disabled" });
    expectError(await call("DELETE", "/v1/webhooks/wh_nope", { key: a.key }), 404, "not_found");
  });

  it("key_id must be one of the tenant's keys", async () => {
    const a = await tenantWithKey();
    const b = await tenantWithKey();
    const own = await call("POST", "/v1/webhooks", {
      key: a.key,
      body: { url: newSink().url, key_id: a.keyId },
    });
    expect(own.status).toBe(201);
    expect(own.body.key_id).toBe(a.keyId);
    const foreign = await call("POST", "/v1/webhooks", {
      key: a.key,
      body: { url: newSink().url, key_id: b.keyId },
    });
    expectError(foreign, 400, "invalid_request");
    expect(foreign.body.error.field).toBe("key_id");
  });

  it("refuses URLs that are not public https (this is not a development environment)", async () => {
    const t = await tenantWithKey();
    for (const url of [
      "http://hooks.example.com/x",
      "https://localhost/x",
      "http://localhost:8787/x",
      "https://127.0.0.1/x",
      "https://10.0.0.8/x",
      "https://192.168.1.20/x",
      "https://169.254.169.254/x",
      "https://[::1]/x",
      "https://user:pw@hooks.example.com/x",
      "hooks.example.com/x",
    ]) {
      const res = await call("POST", "/v1/webhooks", { key: t.key, body: { url } });
      expectError(res, 400, "invalid_request");
      expect(res.body.error.field, url).toBe("url");
    }
    expect((await call("GET", "/v1/webhooks", { key: t.key })).body.data).toEqual([]);
  });

  it("validates the body", async () => {
    const t = await tenantWithKey();
    for (const body of [
      {},
      { url: newSink().url, events: "some" },
      { url: newSink().url, secret: "not-a-secret" },
      { url: newSink().url, secret: "whsec_short" },
      { url: newSink().url, extra: true },
      { url: `https://hooks.test/${"x".repeat(2050)}` },
    ]) {
      expectError(await call("POST", "/v1/webhooks", { key: t.key, body }), 400, "invalid_request");
    }
  });

  it("needs the sub-key", async () => {
    expect((await call("GET", "/v1/webhooks")).status).toBe(401);
    expect((await call("POST", "/v1/webhooks", { body: { url: newSink().url } })).status).toBe(401);
    expect((await call("GET", "/v1/webhooks", { admin: true })).status).toBe(401);
  });
});

describe("/admin/tenants/{id}/webhooks (operator side)", () => {
  it("registers, lists and disables a tenant's endpoints", async () => {
    const t = await tenantWithKey();
    const endpoint = await registerAdmin(t.tenantId, { url: newSink().url, events: "all", key_id: t.keyId });
    expect(endpoint).toMatchObject({ events: "all", key_id: t.keyId });
    const listed = await call("GET", `/admin/tenants/${t.tenantId}/webhooks`, { admin: true });
    expect(listed.status).toBe(200);
    expect(listed.body.data.map((e: { id: string }) => e.id)).toEqual([endpoint.id]);
    expect(JSON.stringify(listed.body)).not.toContain(endpoint.secret);
    // The tenant sees it too.
    expect((await call("GET", "/v1/webhooks", { key: t.key })).body.data[0].id).toBe(endpoint.id);
    const removed = await call("DELETE", `/admin/tenants/${t.tenantId}/webhooks/${endpoint.id}`, {
      admin: true,
    });
    expect(removed.status).toBe(204);
    const other = await tenantWithKey();
    expectError(
      await call("DELETE", `/admin/tenants/${other.tenantId}/webhooks/${endpoint.id}`, { admin: true }),
      404,
      "not_found",
    );
  });

  it("404 for an unknown tenant, 401 without the admin token, 400 for a bad URL", async () => {
    expectError(
      await call("POST", "/admin/tenants/ten_nope/webhooks", { admin: true, body: { url: newSink().url } }),
      404,
      "not_found",
    );
    expectError(await call("GET", "/admin/tenants/ten_nope/webhooks", { admin: true }), 404, "not_found");
    const t = await tenantWithKey();
    expect(
      (
        await call("POST", `/admin/tenants/${t.tenantId}/webhooks`, {
          key: t.key,
          body: { url: newSink().url },
        })
      ).status,
    ).toBe(401);
    expectError(
      await call("POST", `/admin/tenants/${t.tenantId}/webhooks`, {
        admin: true,
        body: { url: "http://hooks.example.com" },
      }),
      400,
      "invalid_request",
    );
  });
});

describe("/admin/webhook-deliveries", () => {
  it("lists deliveries newest first with their attempt log, filtered by tenant, task and status, page by page", async () => {
    const t = await tenantWithKey();
    const other = await tenantWithKey();
    const sink = newSink("log");
    const endpoint = await registerAdmin(t.tenantId, { url: sink.url, events: "all" });
    await registerAdmin(other.tenantId, { url: newSink("log-other").url });
    const first = taskIdOf(await submit(t.key, "imagine", { prompt: "log one" }));
    await driveToEnd(first, t.key);
    const second = taskIdOf(await submit(t.key, "imagine", { prompt: "log two" }));
    await driveToEnd(second, t.key);
    const noise = taskIdOf(await submit(other.key, "imagine", { prompt: "log noise" }));
    await driveToEnd(noise, other.key);
    await waitReceived(sink.name, 4);
    for (let i = 0; i < 100; i++) {
      const all = await deliveriesOf({ tenant_id: t.tenantId, status: "delivered" });
      if (all.length === 4) break;
      await new Promise((r) => setTimeout(r, 20));
    }

    const all = await deliveriesOf({ tenant_id: t.tenantId });
    expect(all).toHaveLength(4);
    expect(all.every((d) => d.tenant_id === t.tenantId && d.endpoint_id === endpoint.id)).toBe(true);
    expect(all.map((d) => d.id)).toEqual([...all.map((d) => d.id)].sort().reverse());
    for (const delivery of all) {
      expect(Object.keys(delivery).sort()).toEqual(
        [
          "attempt_log",
          "attempts",
          "created_at",
          "delivered_at",
          "endpoint_id",
          "event_type",
          "id",
          "last_error",
          "last_status",
          "next_attempt_at",
          "status",
          "task_id",
          "tenant_id",
        ].sort(),
      );
      expect(delivery.attempt_log).toHaveLength(1);
      expect(Object.keys(delivery.attempt_log[0]).sort()).toEqual(
        ["attempted_at", "duration_ms", "error", "replay", "status"].sort(),
      );
      // The payload (task data) is not in the log listing.
      expect(delivery.payload).toBeUndefined();
    }
    const byTask = await deliveriesOf({ task_id: first });
    expect(byTask.map((d) => d.event_type).sort()).toEqual(["task.succeeded", "task.updated"]);
    expect(await deliveriesOf({ tenant_id: t.tenantId, status: "failed" })).toEqual([]);

    // Pages of 3 then 1, together exactly the full list.
    const page1 = await call("GET", `/admin/webhook-deliveries?tenant_id=${t.tenantId}&limit=3`, {
      admin: true,
    });
    expect(page1.body.data).toHaveLength(3);
    expect(page1.body.next_cursor).toBe(page1.body.data[2].id);
    const page2 = await call(
      "GET",
      `/admin/webhook-deliveries?tenant_id=${t.tenantId}&limit=3&cursor=${page1.body.next_cursor}`,
      { admin: true },
    );
    expect(page2.body.data).toHaveLength(1);
    expect(page2.body.next_cursor).toBeNull();
    expect([...page1.body.data, ...page2.body.data].map((d: { id: string }) => d.id)).toEqual(
      all.map((d) => d.id),
    );
  });

  it("needs the admin token and validates the query", async () => {
    const t = await tenantWithKey();
    expect((await call("GET", "/admin/webhook-deliveries")).status).toBe(401);
    expect((await call("GET", "/admin/webhook-deliveries", { key: t.key })).status).toBe(401);
    for (const query of ["status=lost", "limit=0", "limit=201", "limit=abc"]) {
      expectError(
        await call("GET", `/admin/webhook-deliveries?${query}`, { admin: true }),
        400,
        "invalid_request",
      );
    }
  });
});
