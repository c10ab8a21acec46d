import { describe, expect, it } from "vitest";
import { driveToEnd, driveUntilStepRefunded, submit, type TenantWithKey, tenantWithKey } from "../helpers";
import {
  expectError,
  expectNoUpstreamKey,
  expectRefunded,
  expectSubmitted,
  fault,
  faultPending,
  footprint,
  get,
  gridParent,
  keyRow,
  ledgerOfTask,
  marker,
  simTasks,
  taskRow,
  tenantRow,
  unitPrice,
  upscaledParent,
  upstreamIdOf,
} from "../routes/route-helpers";

type Expectation = { status: number; code: string; message?: RegExp; retryAfter?: string };

/** One imagine against a fault scoped to its own prompt; returns the response and the task row. */
async function imagineAgainst(spec: Record<string, unknown>, t?: TenantWithKey) {
  const tenant = t ?? (await tenantWithKey(5_000_000));
  const prompt = marker("upstream-fault");
  const injected = await fault({ on: "submit", prompt_contains: prompt, ...spec });
  const before = await footprint(tenant);
  const started = Date.now();
  const res = await submit(tenant.key, "imagine", { prompt });
  const elapsed = Date.now() - started;
  // The fault was really met by this submit (and so the upstream was really called).
  expect(await faultPending(injected.id)).toBe(false);
  const rows = (await footprint(tenant)).tasks;
  expect(rows).toHaveLength(before.tasks.length + 1);
  return { tenant, res, before, task: rows.at(-1), elapsed, prompt };
}

/** The full contract of a failed submit. */
async function expectFailedSubmit(
  outcome: Awaited<ReturnType<typeof imagineAgainst>>,
  expected: Expectation,
  action = "imagine",
) {
  const { tenant, res, before, task } = outcome;
  const error = expectError(res, expected.status, expected.code);
  if (expected.message) expect(error.message).toMatch(expected.message);
  if (expected.retryAfter !== undefined) expect(res.headers.get("retry-after")).toBe(expected.retryAfter);
  expectNoUpstreamKey(res);

  const cost = await unitPrice(tenant.tenantId, action);
  await expectRefunded(task.id, cost, before.balance, tenant.tenantId);
  const after = await footprint(tenant);
  expect(after.balance).toBe(before.balance);
  expect(after.tenantInflight).toBe(0);
  expect(after.keyInflight).toBe(0);
  expect(after.spend.every((s: number) => s === 0)).toBe(true);
  expect(after.ledger.reduce((sum: number, r: any) => sum + r.amount, 0)).toBe(after.balance);

  // The tenant can see the failed task, as FAILURE, and the reason does not leak the key either.
  const view = await get(tenant.key, task.id);
  expect(view.status).toBe(200);
  expect(view.body.status).toBe("FAILURE");
  expect(view.body.progress).toBe("100%");
  expect(view.body.fail_reason).toEqual(expect.any(String));
  expectNoUpstreamKey(view);
  return error;
}

describe("upstream 4xx at submit → passed through with the upstream's message, refunded", () => {
  it("400 → 400 upstream_rejected with the upstream's message", async () => {
    const outcome = await imagineAgainst({ type: "status", status: 400 });
    await expectFailedSubmit(outcome, {
      status: 400,
      code: "upstream_rejected",
      message: /simulated upstream error 400/,
    });
  });

  it("409 → 4xx upstream_rejected with the upstream's message", async () => {
    const outcome = await imagineAgainst({ type: "status", status: 409 });
    expect(outcome.res.status).toBeGreaterThanOrEqual(400);
    expect(outcome.res.status).toBeLessThan(500);
    await expectFailedSubmit(outcome, {
      status: outcome.res.status,
      code: "upstream_rejected",
      message: /simulated upstream error 409/,
    });
  });

  it("422 → 422 upstream_rejected with the upstream's message", async () => {
    const outcome = await imagineAgainst({ type: "status", status: 422 });
    await expectFailedSubmit(outcome, {
      status: 422,
      code: "upstream_rejected",
      message: /simulated upstream error 422/,
    });
  });

  it("404 → 404 task_not_found with the upstream's message", async () => {
    const outcome = await imagineAgainst({ type: "status", status: 404 });
    await expectFailedSubmit(outcome, {
      status: 404,
      code: "task_not_found",
      message: /simulated upstream error 404/,
    });
  });

  it("401/403 (the gateway's own key refused) → 502 upstream_error, never the tenant's 401/403", async () => {
    for (const status of [401, 403]) {
      const outcome = await imagineAgainst({ type: "status", status });
      const error = await expectFailedSubmit(outcome, { status: 502, code: "upstream_error" });
      expect(error.message).not.toMatch(/simulated upstream error/);
    }
  });
});

describe("upstream 5xx and rate limits at submit", () => {
  it.each([500, 503, 504])("%d → 502 upstream_error, refunded", async (status) => {
    const outcome = await imagineAgainst({ type: "status", status });
    await expectFailedSubmit(outcome, { status: 502, code: "upstream_error", message: /upstream/ });
  });

  it("502 'Service rejected' (MJ code 9) → 502 upstream_error naming it, refunded", async () => {
    const outcome = await imagineAgainst({ type: "status", status: 502 });
    await expectFailedSubmit(outcome, { status: 502, code: "upstream_error", message: /Service rejected/ });
  });

  it("429 → 429 upstream_rate_limited with the upstream's Retry-After, refunded", async () => {
    const outcome = await imagineAgainst({ type: "status", status: 429, retry_after: 7 });
    await expectFailedSubmit(outcome, { status: 429, code: "upstream_rate_limited", retryAfter: "7" });
    const again = await imagineAgainst({ type: "status", status: 429 });
    const error = await expectFailedSubmit(again, { status: 429, code: "upstream_rate_limited" });
    expect(Number(again.res.headers.get("retry-after"))).toBeGreaterThan(0);
    // Our 429 says the upstream is busy, not that the tenant's own key is limited.
    expect(error.message).toMatch(/upstream/);
  });
});

describe("upstream timeouts at submit (UPSTREAM_TIMEOUT_MS = 1500)", () => {
  it("a hung upstream → 504 upstream_timeout after ~1.5 s, refunded", async () => {
    const outcome = await imagineAgainst({ type: "hang", delay_ms: 8_000 });
    await expectFailedSubmit(outcome, { status: 504, code: "upstream_timeout" });
    expect(outcome.elapsed).toBeGreaterThanOrEqual(1_400);
    expect(outcome.elapsed).toBeLessThan(6_000);
  });

  it("a slow answer past the timeout → 504 upstream_timeout, refunded", async () => {
    const outcome = await imagineAgainst({ type: "slow", delay_ms: 4_000 });
    await expectFailedSubmit(outcome, { status: 504, code: "upstream_timeout" });
    expect(outcome.elapsed).toBeLessThan(4_000);
  });

  it("a slow answer within the timeout is fine (control)", async () => {
    const outcome = await imagineAgainst({ type: "slow", delay_ms: 300 });
    const id = expectSubmitted(outcome.res);
    expect(outcome.task.id).toBe(id);
    expect((await driveToEnd(id, outcome.tenant.key)).status).toBe("SUCCESS");
    expect((await ledgerOfTask(id)).map((r: any) => r.kind)).toEqual(["charge"]);
  });
});

describe("unreadable upstream answers at submit → 502 upstream_bad_response, refunded", () => {
  it("garbage claiming to be JSON", async () => {
    const outcome = await imagineAgainst({ type: "garbage" });
    await expectFailedSubmit(outcome, { status: 502, code: "upstream_bad_response" });
  });

  it("an HTML error page from a proxy", async () => {
    const outcome = await imagineAgainst({ type: "html" });
    const error = await expectFailedSubmit(outcome, { status: 502, code: "upstream_bad_response" });
    expect(error.message).not.toContain("<");
  });

  it("a truncated answer (the upstream did take the task, we cannot know its id)", async () => {
    const outcome = await imagineAgainst({ type: "truncated" });
    await expectFailedSubmit(outcome, { status: 502, code: "upstream_bad_response" });
    // The simulator did create the task (process=true): the gateway still refunds, and says so in its logs.
    expect((await simTasks()).some((s) => s.prompt === outcome.prompt)).toBe(true);
  });
});

describe("failures on follow-ups and /modal", () => {
  it("a 503 on an upscale (fault scoped to the parent's upstream id) → 502, refunded", async () => {
    const t = await tenantWithKey(5_000_000);
    const grid = await gridParent(t.key);
    const upstreamParent = await upstreamIdOf(grid.id);
    const injected = await fault({
      type: "status",
      status: 503,
      on: "submit",
      task_id: upstreamParent,
      action: "upscale",
    });
    const before = await footprint(t);
    const res = await submit(t.key, "upscale", { task_id: grid.id, index: 1 });
    expect(await faultPending(injected.id)).toBe(false);
    expectError(res, 502, "upstream_error");
    expectNoUpstreamKey(res);
    const task = (await footprint(t)).tasks.find((r: any) => r.action === "upscale");
    await expectRefunded(task.id, await unitPrice(t.tenantId, "upscale"), before.balance, t.tenantId);
    expect((await keyRow(t.keyId)).inflight).toBe(0);
    // The parent is untouched and can be used again.
    expectSubmitted(await submit(t.key, "upscale", { task_id: grid.id, index: 1 }));
  });

  it("a 503 on /modal → 502; polling finds the upstream never ran it, and the modal charge is refunded", async () => {
    const t = await tenantWithKey(5_000_000);
    const parent = await upscaledParent(t.key);
    const inpaint = expectSubmitted(await submit(t.key, "inpaint", { task_id: parent.id }), "modal");
    // The inpaint's upstream id is only in D1 once settled; the simulator's list has it by parent.
    const upstreamParent = await upstreamIdOf(parent.id);
    const upstreamInpaint = (await simTasks()).find(
      (s: any) => s.action === "inpaint" && s.parent_id === upstreamParent,
    )!.id;
    const injected = await fault({
      type: "status",
      status: 503,
      on: "submit",
      task_id: upstreamInpaint,
      action: "modal",
    });
    const balance = (await tenantRow(t.tenantId)).balance;

    const res = await submit(t.key, "modal", { task_id: inpaint, prompt: marker("hat") });
    expect(await faultPending(injected.id)).toBe(false);
    expectError(res, 502, "upstream_error");
    expectNoUpstreamKey(res);

    // Ambiguous (the upstream may have run it): the task waits in MODAL, charge held, until
    // polling shows the upstream still has it in MODAL; then only the modal step is refunded.
    const waiting = await get(t.key, inpaint);
    expect(waiting.body.status).toBe("MODAL");
    await driveUntilStepRefunded(inpaint, "modal.1");
    const cost = await unitPrice(t.tenantId, "modal");
    const rows = await ledgerOfTask(inpaint);
    expect(rows.map((r: any) => [r.kind, r.amount, r.step])).toEqual([
      ["charge", -cost, "modal.1"],
      ["refund", cost, "modal.1"],
    ]);
    expect(rows[1].ref_id).toBe(rows[0].id);
    expect((await tenantRow(t.tenantId)).balance).toBe(balance);
    expect((await get(t.key, inpaint)).body.status).toBe("MODAL");
    expect((await taskRow(inpaint)).settled_at).toBeNull();
    expect((await tenantRow(t.tenantId)).inflight).toBe(1);
  });
});
