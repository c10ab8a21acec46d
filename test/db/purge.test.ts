/**
 * The cron's purge (src/db/maintenance.ts): rate windows past their window, idempotency keys
 * past their 24 h and settled webhook deliveries past the retention go, in bounded batches;
 * anything still live stays.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { RATE_WINDOW_MS } from "../../src/db/admission";
import { IDEMPOTENCY_RETENTION_MS } from "../../src/db/idempotency";
import { purgeIdempotencyKeys, purgeRateWindows, runMaintenance } from "../../src/db/maintenance";
import { createEndpoint } from "../../src/db/webhooks";
import { tenantWithKey } from "../helpers";
import { rows, uid } from "./money-helpers";

const NOW = Date.now();
const DAY = 86_400_000;

async function seed(prefix: string) {
  const t = await tenantWithKey(0);
  const endpoint = (await createEndpoint(env.DB, {
    tenantId: t.tenantId,
    keyId: null,
    url: "https://hooks.test/purge",
    events: "terminal",
  }))!;
  const window = (age: number) =>
    env.DB.prepare(
      "INSERT INTO rate_windows (key_id, window_start, count, lim, key_state) VALUES (?1, ?2, 1, 10, 'active')",
    ).bind(`${prefix}-w${age}`, NOW - age);
  const idem = (age: number) =>
    env.DB.prepare(
      "INSERT INTO idempotency (tenant_id, idem_key, request_hash, task_id, created_at) VALUES (?1, ?2, 'h', 't', ?3)",
    ).bind(prefix, `i${age}`, NOW - age);
  const webhook = (id: string, age: number, status: string) => [
    env.DB.prepare(
      `INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, task_id, event_type, payload, status, created_at)
       VALUES (?1, ?2, ?3, 't', 'task.succeeded', '{}', ?4, ?5)`,
    ).bind(`${prefix}-${id}`, endpoint.id, prefix, status, NOW - age),
    env.DB.prepare(
      "INSERT INTO webhook_attempts (delivery_id, attempted_at, duration_ms) VALUES (?1, ?2, 1)",
    ).bind(`${prefix}-${id}`, NOW - age),
  ];
  await env.DB.batch([
    window(0),
    window(5 * RATE_WINDOW_MS),
    window(11 * RATE_WINDOW_MS),
    window(30 * RATE_WINDOW_MS),
    idem(1000),
    idem(IDEMPOTENCY_RETENTION_MS - 60_000),
    idem(IDEMPOTENCY_RETENTION_MS + 60_000),
    idem(3 * DAY),
    ...webhook("fresh", DAY, "delivered"),
    ...webhook("old", 40 * DAY, "delivered"),
    ...webhook("old-failed", 40 * DAY, "failed"),
    ...webhook("old-pending", 40 * DAY, "pending"),
  ]);
}

const left = async (prefix: string) => ({
  windows: (
    await rows("SELECT key_id FROM rate_windows WHERE key_id LIKE ?1 ORDER BY key_id", `${prefix}-%`)
  ).map((r) => r.key_id),
  idempotency: (
    await rows("SELECT idem_key FROM idempotency WHERE tenant_id = ?1 ORDER BY idem_key", prefix)
  ).map((r) => r.idem_key),
  deliveries: (await rows("SELECT id FROM webhook_deliveries WHERE tenant_id = ?1 ORDER BY id", prefix)).map(
    (r) => r.id,
  ),
  attempts: (
    await rows(
      "SELECT delivery_id FROM webhook_attempts WHERE delivery_id LIKE ?1 ORDER BY delivery_id",
      `${prefix}-%`,
    )
  ).map((r) => r.delivery_id),
});

describe("the cron's purge", () => {
  it("deletes only what has expired", async () => {
    const p = `purge-${uid()}`;
    await seed(p);
    await runMaintenance(env.DB, NOW, { webhookRetentionMs: 30 * DAY, batch: 2 });
    expect(await left(p)).toEqual({
      windows: [`${p}-w0`, `${p}-w${5 * RATE_WINDOW_MS}`],
      idempotency: ["i1000", `i${IDEMPOTENCY_RETENTION_MS - 60_000}`],
      deliveries: [`${p}-fresh`, `${p}-old-pending`],
      attempts: [`${p}-fresh`, `${p}-old-pending`],
    });
  });

  it("works in bounded batches, oldest first", async () => {
    const p = `batch-${uid()}`;
    await seed(p);
    const before = NOW - 10 * RATE_WINDOW_MS;
    // Other files' rows share these tables: count only this test's.
    expect(await purgeRateWindows(env.DB, before, 1)).toBe(1);
    // The oldest (30 windows) went first; the one 11 windows old waits for the next round.
    expect((await left(p)).windows).toEqual(
      [`${p}-w0`, `${p}-w${5 * RATE_WINDOW_MS}`, `${p}-w${11 * RATE_WINDOW_MS}`].sort(),
    );
    expect(await purgeIdempotencyKeys(env.DB, NOW - IDEMPOTENCY_RETENTION_MS, 1)).toBe(1);
    expect((await left(p)).idempotency).toEqual(
      ["i1000", `i${IDEMPOTENCY_RETENTION_MS - 60_000}`, `i${IDEMPOTENCY_RETENTION_MS + 60_000}`].sort(),
    );
  });
});
