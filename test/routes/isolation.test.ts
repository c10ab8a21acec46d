/**
 * Tenant isolation on the two task queries: another tenant's task, an unknown id and a
 * malformed id all answer the same 404 in the one error shape, and reveal nothing.
 */
import { describe, expect, it } from "vitest";
import { call, driveToEnd, submit, tenantWithKey } from "../helpers";
import { expectError, expectSubmitted, get, getUnified, marker, upstreamIdOf } from "./route-helpers";

const QUERIES = [
  ["GET /v1/midjourney/{id}", get],
  ["GET /v1/tasks/{id}", getUnified],
] as const;

describe("GET /v1/midjourney/{id} and /v1/tasks/{id} are per tenant", () => {
  it("another tenant's task → 404 that says nothing about it, before and after it finished", async () => {
    const owner = await tenantWithKey();
    const prompt = marker("private prompt");
    const id = expectSubmitted(await submit(owner.key, "imagine", { prompt, metadata: { secret: "s3" } }));
    const other = await tenantWithKey();

    for (const phase of ["running", "finished"]) {
      if (phase === "finished") await driveToEnd(id, owner.key);
      for (const [name, query] of QUERIES) {
        const res = await query(other.key, id);
        const error = expectError(res, 404, "task_not_found");
        expect(error.type).toBe("not_found_error");
        const text = JSON.stringify(res.body);
        expect(text, name).not.toContain(prompt);
        expect(text, name).not.toContain("s3");
        expect(text, name).not.toContain("SUCCESS");
        // Indistinguishable from an id that never existed (apart from the id and request id).
        const unknown = await query(other.key, "task_01KV52C0TEJSYZMCG0NCS4YWKK");
        expect(unknown.status).toBe(404);
        expect(unknown.body.error.code).toBe(res.body.error.code);
        expect(unknown.body.error.message.replace("task_01KV52C0TEJSYZMCG0NCS4YWKK", "X")).toBe(
          error.message.replace(id, "X"),
        );
      }
      // The owner still sees it.
      expect((await get(owner.key, id)).status).toBe(200);
      expect((await getUnified(owner.key, id)).status).toBe(200);
    }
  });

  it("the upstream's id of a task is not a way in: 404 even for the owner", async () => {
    const t = await tenantWithKey();
    const id = expectSubmitted(await submit(t.key, "imagine", { prompt: marker() }));
    await driveToEnd(id, t.key);
    const upstreamId = await upstreamIdOf(id);
    for (const [, query] of QUERIES) expectError(await query(t.key, upstreamId), 404, "task_not_found");
  });

  it("unknown ids → 404 task_not_found", async () => {
    const t = await tenantWithKey();
    for (const id of ["task_01KV52C0TEJSYZMCG0NCS4YWKK", "task_00000000000000000000000000"]) {
      for (const [, query] of QUERIES) {
        const error = expectError(await query(t.key, id), 404, "task_not_found");
        expect(error.message).toContain(id);
      }
    }
  });

  it("malformed ids → 404 (never 400 or 500)", async () => {
    const t = await tenantWithKey();
    for (const id of [
      "abc",
      "task_123",
      "task_01kv52c0tejsyzmcg0ncs4ywkk",
      "task_01KV52C0TEJSYZMCG0NCS4YWKKX",
      "TASK_01KV52C0TEJSYZMCG0NCS4YWKK",
      "task_01KV52C0TEJSYZMCG0NCS4YWKU",
      "%27%20OR%201%3D1",
      "..%2F..%2Fadmin",
    ]) {
      for (const [name, query] of QUERIES) {
        const res = await query(t.key, id);
        expect(res.status, `${name} ${id}: ${JSON.stringify(res.body)}`).toBe(404);
        expectError(res, 404, res.body.error.code);
        expect(["task_not_found", "not_found"]).toContain(res.body.error.code);
      }
    }
  });

  it("without a key the queries are 401, not 404", async () => {
    const t = await tenantWithKey();
    const id = expectSubmitted(await submit(t.key, "imagine", { prompt: marker() }));
    for (const path of [`/v1/midjourney/${id}`, `/v1/tasks/${id}`]) {
      expectError(await call("GET", path), 401, "missing_api_key");
    }
  });
});
