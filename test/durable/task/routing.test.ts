/**
 * The upstream pool wired into a task's life, end to end through the gateway: each pool
 * member is a simulator account of its own (its own `sk-sim-…` key; every outbound fetch
 * reaches the simulator whatever the member's host), so the simulator's per-key counters
 * say which member got what. The default member is disabled here, so only the members a
 * test adds take traffic.
 */
import { env } from "cloudflare:test";
import { beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { gateOf } from "../../../src/services/upstream-pool";
import { call, driveToEnd, ledgerOf, sim, submit, tenantWithKey } from "../../helpers";
import { expectError, expectSubmitted, marker, TEST_UPSTREAM_KEY } from "../../routes/route-helpers";
import { upscaledParent } from "../durable-helpers";
import { addMember, type Member, statsOf } from "./pool-helpers";

const patchMember = (id: string, body: Record<string, unknown>) =>
  call("PATCH", `/admin/upstreams/${id}`, { admin: true, body });

const imagine = (key: string, prompt = marker("p")) => submit(key, "imagine", { prompt });

/** Members of earlier tests stop taking new tasks, so each test routes over its own. */
async function disableEveryMember() {
  const list = await call("GET", "/admin/upstreams", { admin: true });
  for (const member of list.body.data ?? list.body) {
    await patchMember(member.id, { enabled: false });
  }
}

beforeAll(async () => {
  await patchMember("default", { enabled: false });
});

beforeEach(disableEveryMember);

describe("routing new tasks over the pool", () => {
  it("splits traffic by weight (3:1 within ±0.1 of the share over 200 submits)", async () => {
    const heavy = await addMember({ weight: 300, max_inflight: 1000 });
    const light = await addMember({ weight: 100, max_inflight: 1000 });
    const tenant = await tenantWithKey(100_000_000);
    const total = 200;
    for (let batch = 0; batch < total / 40; batch++) {
      const answers = await Promise.all(Array.from({ length: 40 }, () => imagine(tenant.key)));
      for (const answer of answers) expectSubmitted(answer);
    }
    const [a, b] = [await statsOf(heavy), await statsOf(light)];
    expect(a.submits_accepted + b.submits_accepted).toBe(total);
    expect(Math.abs(a.submits_accepted / total - 0.75)).toBeLessThan(0.1);
  }, 180_000);

  it("never holds more than a member's cap open, under 40 concurrent submits; the rest wait in a queue, charged once", async () => {
    const a = await addMember({ max_inflight: 5 });
    const b = await addMember({ max_inflight: 3 });
    for (const member of [a, b]) await sim("POST", "/_sim/config", { time_scale: 1, key: member.key });
    const tenant = await tenantWithKey(100_000_000);
    const answers = await Promise.all(Array.from({ length: 40 }, () => imagine(tenant.key)));
    for (const answer of answers) expectSubmitted(answer);
    expect((await statsOf(a)).peak_open_tasks).toBeLessThanOrEqual(5);
    expect((await statsOf(b)).peak_open_tasks).toBeLessThanOrEqual(3);
    const [ga, gb] = [await gateOf(env, a.id).status(), await gateOf(env, b.id).status()];
    expect([ga.inflight, gb.inflight, ga.queued + gb.queued]).toEqual([5, 3, 32]);
    const ledger = await ledgerOf(tenant.tenantId);
    expect(ledger.filter((row: any) => row.kind === "charge")).toHaveLength(40);
    expect(ledger.filter((row: any) => row.kind === "refund")).toHaveLength(0);
    // Let the open tasks finish, so their alarms end with the file.
    for (const member of [a, b]) await sim("POST", "/_sim/clock", { advance_ms: 3_600_000, key: member.key });
  }, 120_000);

  it("fails over within the same request and charge while one member refuses every submit", async () => {
    const refusing = await addMember({ weight: 1000 });
    const healthy = await addMember({ weight: 1 });
    await sim("POST", "/_sim/faults", {
      type: "status",
      status: 500,
      on: "submit",
      count: "always",
      key: refusing.key,
    });
    const tenant = await tenantWithKey(100_000_000);
    for (let i = 0; i < 12; i++) expectSubmitted(await imagine(tenant.key));
    expect((await statsOf(healthy)).submits_accepted).toBe(12);
    expect((await statsOf(refusing)).submits_accepted).toBe(0);
    expect((await statsOf(refusing)).submits_refused).toBeGreaterThan(0);
    const ledger = await ledgerOf(tenant.tenantId);
    expect(ledger.filter((row: any) => row.kind === "charge")).toHaveLength(12);
    expect(ledger.filter((row: any) => row.kind === "refund")).toHaveLength(0);
    await sim("DELETE", `/_sim/faults?key=${encodeURIComponent(refusing.key)}`);
  });

  it("a member's gate hears of every submit: a refusal before the client is answered, a job taken soon after", async () => {
    const member = await addMember();
    const gate = gateOf(env, member.id);
    await sim("POST", "/_sim/faults", {
      type: "status",
      status: 500,
      on: "submit",
      count: 1,
      key: member.key,
    });
    const tenant = await tenantWithKey(100_000_000);
    expect((await imagine(tenant.key)).status).toBeGreaterThanOrEqual(500);
    // Recorded before the answer, so the next submit (here, or on another member) sees it.
    expect((await gate.status()).window).toEqual({ samples: 1, errors: 1 });
    expect((await gate.report()).submits).toMatchObject({ inWindow: 1, failedInWindow: 1 });
    expectSubmitted(await imagine(tenant.key));
    // A job the upstream took is answered without waiting for its record, which still lands.
    await vi.waitFor(async () => expect((await gate.status()).window).toEqual({ samples: 2, errors: 1 }));
    expect((await gate.report()).submits).toMatchObject({ inWindow: 2, failedInWindow: 1 });
  });

  // workerd's fetch rejects a refused connection exactly as a cut one ("Network connection
  // lost.", same error properties; README, pool section), so neither is tried elsewhere.
  it.each(["cut", "refuse"])(
    "never tries another member after an ambiguous failure (a %s connection)",
    async (type) => {
      const first = await addMember({ priority: 0 });
      const other = await addMember({ priority: 1 });
      await sim("POST", "/_sim/faults", { type, on: "submit", count: 1, key: first.key });
      const tenant = await tenantWithKey(100_000_000);
      const res = await imagine(tenant.key);
      expect(res.status).toBeGreaterThanOrEqual(500);
      expect((await statsOf(first)).submits).toBe(1);
      expect((await statsOf(other)).submits).toBe(0);
    },
  );
});

describe("a body too large to keep", () => {
  it("is sent to one member only: a clear refusal of a submit over 8 MiB is refunded, not resent elsewhere", async () => {
    const first = await addMember({ priority: 0 });
    const other = await addMember({ priority: 1 });
    await sim("POST", "/_sim/faults", {
      type: "status",
      status: 500,
      on: "submit",
      count: 1,
      key: first.key,
    });
    const tenant = await tenantWithKey(100_000_000);
    // 9 MiB of image as a data URI: more than REPLAYABLE_BODY_BYTES, within the 12 MiB input bound.
    const image = `data:image/png;base64,${btoa("\u0089PNG".padEnd(9 * 1024 * 1024, "x"))}`;
    const res = await submit(tenant.key, "imagine", { prompt: marker("big"), image_urls: [image] });
    expect(res.status).toBeGreaterThanOrEqual(500);
    expect((await statsOf(first)).submits).toBe(1);
    expect((await statsOf(other)).submits).toBe(0);
    const ledger = await ledgerOf(tenant.tenantId);
    expect(ledger.filter((row: any) => row.kind === "charge")).toHaveLength(1);
    expect(ledger.filter((row: any) => row.kind === "refund")).toHaveLength(1);
  });
});

describe("follow-ups are sticky", () => {
  async function finishedImagineOn(member: Member, key: string) {
    const taskId = expectSubmitted(await imagine(key));
    const done = await driveToEnd(taskId, key);
    expect(done.status).toBe("SUCCESS");
    expect((await statsOf(member)).submits_accepted).toBe(1);
    return taskId;
  }

  it("an upscale goes to the parent's member, even when new tasks would go elsewhere", async () => {
    const parentMember = await addMember({ priority: 0 });
    const tenant = await tenantWithKey(100_000_000);
    const parent = await finishedImagineOn(parentMember, tenant.key);
    const preferred = await addMember({ priority: -5 });
    expectSubmitted(await submit(tenant.key, "upscale", { task_id: parent, index: 1 }));
    expect((await statsOf(parentMember)).submits_accepted).toBe(2);
    expect((await statsOf(preferred)).submits).toBe(0);
    // The upscale's polls reach the same member too.
    expectSubmitted(await imagine(tenant.key));
    expect((await statsOf(preferred)).submits_accepted).toBe(1);
  });

  it("a follow-up whose parent's member is disabled gets 503 parent_upstream_unavailable and writes nothing", async () => {
    const parentMember = await addMember();
    const tenant = await tenantWithKey(100_000_000);
    const parent = await finishedImagineOn(parentMember, tenant.key);
    await addMember();
    await call("DELETE", `/admin/upstreams/${parentMember.id}`, { admin: true });
    const ledgerBefore = await ledgerOf(tenant.tenantId);
    const tasksBefore = await env.DB.prepare("SELECT COUNT(*) AS n FROM tasks WHERE tenant_id = ?1")
      .bind(tenant.tenantId)
      .first<{ n: number }>();
    const res = await submit(tenant.key, "upscale", { task_id: parent, index: 1 });
    expectError(res, 503, "parent_upstream_unavailable");
    expect(await ledgerOf(tenant.tenantId)).toEqual(ledgerBefore);
    const tasksAfter = await env.DB.prepare("SELECT COUNT(*) AS n FROM tasks WHERE tenant_id = ?1")
      .bind(tenant.tenantId)
      .first<{ n: number }>();
    expect(tasksAfter).toEqual(tasksBefore);
    expect((await statsOf(parentMember)).submits).toBe(1);
  });
});

it("keys never leave the gateway: not in submit answers, task views or the operator's list", async () => {
  const member = await addMember();
  const tenant = await tenantWithKey(100_000_000);
  const submitted = await imagine(tenant.key);
  const taskId = expectSubmitted(submitted);
  const done = await driveToEnd(taskId, tenant.key);
  const list = await call("GET", "/admin/upstreams", { admin: true });
  const one = await call("GET", `/admin/upstreams/${member.id}`, { admin: true });
  const seen = JSON.stringify([submitted.body, done, list.body, one.body]);
  expect(seen).not.toContain(member.key);
  expect(seen).not.toContain(TEST_UPSTREAM_KEY);
});

describe("slots and /modal", () => {
  it("a task gives its slot back once at its terminal state, so a member with cap 1 takes the next", async () => {
    const member = await addMember({ max_inflight: 1 });
    const tenant = await tenantWithKey(100_000_000);
    for (let i = 0; i < 2; i++) {
      const taskId = expectSubmitted(await imagine(tenant.key));
      expect((await gateOf(env, member.id).status()).inflight).toBe(1);
      expect((await driveToEnd(taskId, tenant.key)).status).toBe("SUCCESS");
      expect((await gateOf(env, member.id).status()).inflight).toBe(0);
    }
  });

  it("a /modal whose task's member is disabled gets 503 parent_upstream_unavailable, charged nothing; it works once re-enabled", async () => {
    const member = await addMember();
    const tenant = await tenantWithKey(100_000_000);
    const parent = await upscaledParent(tenant, marker("modal-sticky"));
    const taskId = expectSubmitted(await submit(tenant.key, "inpaint", { task_id: parent }), "modal");
    await addMember();
    await patchMember(member.id, { enabled: false });
    const ledgerBefore = await ledgerOf(tenant.tenantId);
    const body = { task_id: taskId, prompt: "a red hat", mask_url: "https://example.com/m.png" };
    expectError(await submit(tenant.key, "modal", body), 503, "parent_upstream_unavailable");
    expect(await ledgerOf(tenant.tenantId)).toEqual(ledgerBefore);
    await patchMember(member.id, { enabled: true });
    expectSubmitted(await submit(tenant.key, "modal", body));
    expect((await driveToEnd(taskId, tenant.key)).status).toBe("SUCCESS");
  });
});
