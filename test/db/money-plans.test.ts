/**
 * Every statement of admission, settlement, step refunds and the orphan sweep is an index
 * search (EXPLAIN QUERY PLAN on the statements the code really runs, against a ledger and
 * task table with history in them): none scans the ledger, tasks or keys.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { admit, refundStep, settleTask } from "../../src/db/admission";
import { addServedBytes } from "../../src/db/asset-usage";
import { fileByCapability, recordAssetFile } from "../../src/db/assets";
import { openTasksAdmittedBefore } from "../../src/db/tasks";
import { newTaskId } from "../../src/domain/ids";
import { chargeStorage } from "../../src/services/asset-usage";
import { upstreamCostsToday } from "../../src/services/upstreams";
import { tenantWithKey } from "../helpers";
import { admittedTask } from "./money-helpers";
import { expectNoScans, planOf, recordingDb } from "./plans";

const SCAN = /^SCAN (ledger|tasks|api_keys|tenants|key_spend|rate_windows|asset_\w+)\b/;

let t: { tenantId: string; keyId: string };

beforeAll(async () => {
  t = await tenantWithKey(1_000_000_000);
  // Some history, so the planner has rows to weigh.
  for (let i = 0; i < 30; i++) {
    const id = await admittedTask(t, 1_000);
    await settleTask(env.DB, {
      taskId: id,
      status: i % 2 ? "SUCCESS" : "FAILURE",
      refund: i % 2 === 0,
      reason: "history",
      failReason: null,
      upstreamTaskId: null,
      upstreamId: i % 3 ? "default" : "ups_other",
      at: Date.now(),
    });
  }
  await env.DB.exec("ANALYZE");
});

describe("money statements are index-backed", () => {
  it("admission of a repeat request (N tasks) and its settlement with refunds", async () => {
    const { db, statements } = recordingDb();
    const taskId = newTaskId();
    await admit(db, {
      tenantId: t.tenantId,
      keyId: t.keyId,
      taskId,
      action: "imagine",
      parentTaskId: null,
      costMicros: 1_000,
      siblings: [{ taskId: newTaskId(), costMicros: 1_000 }],
      kind: "new_task",
      idempotency: { key: `k-${taskId}`, requestHash: "h" },
      at: Date.now(),
    });
    await settleTask(db, {
      taskId,
      status: "FAILURE",
      refund: true,
      refundSteps: ["submit", "modal.1"],
      reason: "test",
      failReason: "test",
      upstreamTaskId: null,
      upstreamCostMicros: 5,
      at: Date.now(),
    });
    await expectNoScans(statements, SCAN);
  });

  it("a /modal step's admission and refund", async () => {
    const taskId = await admittedTask(t, 0);
    const { db, statements } = recordingDb();
    await admit(db, {
      tenantId: t.tenantId,
      keyId: t.keyId,
      taskId,
      action: "modal",
      parentTaskId: null,
      costMicros: 1_000,
      kind: "modal",
      step: "modal.1",
      idempotency: null,
      at: Date.now(),
    });
    expect(await refundStep(db, { taskId, step: "modal.1", reason: "modal_refused", at: Date.now() })).toBe(
      true,
    );
    await expectNoScans(statements, SCAN);
  });

  it("each member's upstream cost today (the pool view; margin grouped by upstream)", async () => {
    const { db, statements } = recordingDb();
    const costs = await upstreamCostsToday(db);
    expect(costs.get("default")).toBe(0); // settled here without an upstream cost
    await expectNoScans(statements, SCAN);
  });

  it("the orphan sweep's read of old open tasks", async () => {
    const { db, statements } = recordingDb();
    await openTasksAdmittedBefore(db, Date.now(), 200);
    await expectNoScans(statements, SCAN);
  });

  it("the daily storage charge (priced tenants only) and the served-bytes flush", async () => {
    const priced = await tenantWithKey(1_000_000, {}, { storage_price_micros_per_gb_month: 50_000 });
    for (let i = 0; i < 20; i++) {
      const other = await tenantWithKey(0);
      const owner = i % 4 ? other.tenantId : priced.tenantId;
      await recordAssetFile(env.DB, {
        objectKey: `t/${owner}/task_p/${i}.png`,
        tenantId: owner,
        taskId: "task_p",
        bytes: 1_000_000_000,
        storedAt: Date.now(),
        capability: i % 2 ? `cap${String(i).padStart(19, "0")}` : null,
      });
    }
    await env.DB.exec("ANALYZE");
    const { db, statements } = recordingDb();
    await chargeStorage(db, Date.now());
    await addServedBytes(db, [{ tenantId: priced.tenantId, day: "2031-01-01", bytes: 10, responses: 1 }]);
    // Serving a capability link reads its file by token on every request.
    expect(await fileByCapability(db, `cap${String(3).padStart(19, "0")}`)).not.toBeNull();
    await expectNoScans(statements, SCAN);
    expect(statements.some((s) => s.sql.includes("'storage'"))).toBe(true);
    // Aliased tables show as their alias: only the partial index of priced tenants may be walked.
    for (const statement of statements) {
      const scans = (await planOf(statement)).filter(
        (line) => line.startsWith("SCAN ") && !line.includes("USING INDEX tenants_with_storage_price"),
      );
      expect(scans, statement.sql).toEqual([]);
    }
  });
});
