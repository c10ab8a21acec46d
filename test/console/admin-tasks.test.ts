/**
 * The console's backend: GET /admin/tasks (D1, newest first, filters, cursor pagination),
 * GET /admin/tasks/{id} (billing row + live task object) and
 * POST /admin/tenants/{id}/stream-tokens (a tenant's stream token minted by the operator).
 */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { call, driveToEnd, submit, tenantWithKey } from "../helpers";
import { sseReader } from "../streams/sse";

const taskIdOf = (response: { body: any }) => response.body.data[0].task_id as string;

describe("GET /admin/tasks", () => {
  it("lists one tenant's tasks newest first with status, action and cost; other tenants' stay out", async () => {
    const a = await tenantWithKey();
    const b = await tenantWithKey();
    const first = taskIdOf(await submit(a.key, "imagine", { prompt: "list one", speed: "fast" }));
    const second = taskIdOf(await submit(a.key, "imagine", { prompt: "list two" }));
    await submit(b.key, "imagine", { prompt: "someone else" });

    const page = await call("GET", `/admin/tasks?tenant_id=${a.tenantId}`, { admin: true });
    expect(page.status).toBe(200);
    expect(page.body.data.map((t: any) => t.id)).toEqual([second, first]);
    expect(page.body.next_cursor).toBeNull();
    const row = page.body.data[1];
    expect(row).toMatchObject({
      id: first,
      tenant_id: a.tenantId,
      key_id: a.keyId,
      action: "imagine",
      status: "open",
      parent_task_id: null,
      fail_reason: null,
      finished_at: null,
    });
    expect(row.cost_micros).toBeGreaterThan(0);
    expect(Date.parse(row.created_at)).toBeGreaterThan(0);
  });

  it("filters by status (open until settled, then the terminal status) and by action", async () => {
    const t = await tenantWithKey();
    const done = taskIdOf(await submit(t.key, "imagine", { prompt: "done" }));
    await driveToEnd(done, t.key);
    const up = taskIdOf(await submit(t.key, "upscale", { task_id: done, index: 2 }));
    const open = taskIdOf(await submit(t.key, "imagine", { prompt: "still open" }));

    const list = async (query: string) =>
      (await call("GET", `/admin/tasks?tenant_id=${t.tenantId}&${query}`, { admin: true })).body.data.map(
        (r: any) => r.id,
      );
    expect(await list("status=SUCCESS")).toEqual([done]);
    expect(await list("status=open")).toEqual(expect.arrayContaining([open, up]));
    expect(await list("status=open")).not.toContain(done);
    expect(await list("action=upscale")).toEqual([up]);
    expect(await list("action=imagine&status=open")).toEqual([open]);
    expect(await list("status=FAILURE")).toEqual([]);
    const upRow = (await call("GET", `/admin/tasks?tenant_id=${t.tenantId}&action=upscale`, { admin: true }))
      .body.data[0];
    expect(upRow.parent_task_id).toBe(done);
  });

  it("pages with next_cursor until every task was seen exactly once", async () => {
    const t = await tenantWithKey();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(taskIdOf(await submit(t.key, "imagine", { prompt: `page ${i}` })));
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 10; pages++) {
      const query: string = `tenant_id=${t.tenantId}&limit=2${cursor ? `&cursor=${cursor}` : ""}`;
      const page = await call("GET", `/admin/tasks?${query}`, { admin: true });
      expect(page.status).toBe(200);
      expect(page.body.data.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.data.map((r: any) => r.id));
      cursor = page.body.next_cursor;
      if (!cursor) break;
    }
    // Ids are ULIDs: newest first, and each one exactly once across the pages.
    expect(seen).toHaveLength(ids.length);
    expect([...seen].sort()).toEqual([...ids].sort());
    expect(seen).toEqual([...seen].sort().reverse());
  });

  it("rejects bad filters with the one error shape, and needs the admin token", async () => {
    const bad = await call("GET", "/admin/tasks?status=RUNNING", { admin: true });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("invalid_request");
    expect((await call("GET", "/admin/tasks?cursor=nope", { admin: true })).status).toBe(400);
    expect((await call("GET", "/admin/tasks?limit=0", { admin: true })).status).toBe(400);
    const anonymous = await call("GET", "/admin/tasks");
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error.code).toBe("admin_unauthorized");
    const tenantKey = await call("GET", "/admin/tasks", { key: (await tenantWithKey()).key });
    expect(tenantKey.status).toBe(401);
  });
});

describe("GET /admin/tasks/{task_id}", () => {
  it("returns the billing row with the task object, images included once done", async () => {
    const t = await tenantWithKey();
    const id = taskIdOf(await submit(t.key, "imagine", { prompt: "detail" }));
    await driveToEnd(id, t.key);
    const detail = await call("GET", `/admin/tasks/${id}`, { admin: true });
    expect(detail.status).toBe(200);
    expect(detail.body).toMatchObject({ id, tenant_id: t.tenantId, status: "SUCCESS", action: "imagine" });
    expect(detail.body.finished_at).not.toBeNull();
    expect(detail.body.task).toMatchObject({ id, status: "SUCCESS", action: "IMAGINE", progress: "100%" });
    expect(detail.body.task.image_urls).toHaveLength(4);
    expect(detail.body.task.cost).toBeCloseTo(detail.body.cost_micros / 1_000_000, 6);
    const asTenant = await call("GET", `/v1/midjourney/${id}`, { key: t.key });
    expect(detail.body.task).toEqual(asTenant.body);
  });

  it("404s an unknown or malformed id", async () => {
    const unknown = await call("GET", "/admin/tasks/task_01KV52C0TEJSYZMCG0NCS4YWKK", { admin: true });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe("task_not_found");
    expect((await call("GET", "/admin/tasks/nope", { admin: true })).status).toBe(404);
  });
});

describe("POST /admin/tenants/{tenant_id}/stream-tokens", () => {
  it("mints a token that opens the tenant's stream, which then carries its tasks' changes", async () => {
    const t = await tenantWithKey();
    const minted = await call("POST", `/admin/tenants/${t.tenantId}/stream-tokens`, {
      admin: true,
      body: { ttl_seconds: 120 },
    });
    expect(minted.status).toBe(201);
    expect(minted.body.token).toMatch(/^v1\./);
    expect(minted.body.task_ids).toBeNull();
    const expires = Date.parse(minted.body.expires_at) - Date.now();
    expect(expires).toBeGreaterThan(100_000);
    expect(expires).toBeLessThanOrEqual(120_000);

    const response = await SELF.fetch(
      `http://gateway.test/v1/events?token=${encodeURIComponent(minted.body.token)}`,
    );
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const stream = sseReader(response);
    const id = taskIdOf(await submit(t.key, "imagine", { prompt: "streamed" }));
    const event = await stream.next(5000);
    expect(event?.event).toBe("status");
    expect(JSON.parse(event!.data).id).toBe(id);
    await stream.cancel();
  });

  it("scopes a token to task ids when asked", async () => {
    const t = await tenantWithKey();
    const id = taskIdOf(await submit(t.key, "imagine", { prompt: "scoped" }));
    const other = taskIdOf(await submit(t.key, "imagine", { prompt: "other" }));
    const minted = await call("POST", `/admin/tenants/${t.tenantId}/stream-tokens`, {
      admin: true,
      body: { task_ids: [id] },
    });
    expect(minted.status).toBe(201);
    expect(minted.body.task_ids).toEqual([id]);
    const token = encodeURIComponent(minted.body.token);
    const allowed = await SELF.fetch(`http://gateway.test/v1/midjourney/${id}/events?token=${token}`);
    expect(allowed.status).toBe(200);
    await allowed.body?.cancel();
    const refused = await SELF.fetch(`http://gateway.test/v1/midjourney/${other}/events?token=${token}`);
    expect(refused.status).toBe(403);
    expect((await refused.json<any>()).error.code).toBe("stream_token_scope");
  });

  it("404s an unknown tenant, validates the body and needs the admin token", async () => {
    const unknown = await call("POST", "/admin/tenants/ten_nope/stream-tokens", { admin: true, body: {} });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe("not_found");
    const t = await tenantWithKey();
    const bad = await call("POST", `/admin/tenants/${t.tenantId}/stream-tokens`, {
      admin: true,
      body: { ttl_seconds: 1 },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe("ttl_seconds");
    const extra = await call("POST", `/admin/tenants/${t.tenantId}/stream-tokens`, {
      admin: true,
      body: { tenant_id: "someone-else" },
    });
    expect(extra.status).toBe(400);
    const anonymous = await call("POST", `/admin/tenants/${t.tenantId}/stream-tokens`, { body: {} });
    expect(anonymous.status).toBe(401);
    const withKey = await call("POST", `/admin/tenants/${t.tenantId}/stream-tokens`, {
      key: t.key,
      body: {},
    });
    expect(withKey.status).toBe(401);
  });
});
