/**
 * Moderation failures counted per tenant in its hub, end to end: the simulator fails prompts
 * tagged [sim:moderation] the way an upstream's moderation does; past the thresholds the
 * tenant's submits are slowed, then refused for a cooldown, before admission (nothing charged),
 * while other tenants and other kinds of failure are unaffected.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { configFrom } from "../../src/env";
import { driveToEnd, ledgerOf, submit, tenantWithKey } from "../helpers";
import { expectError, expectSubmitted, marker } from "../routes/route-helpers";

const hubOf = (tenantId: string) => env.TENANT_HUB.get(env.TENANT_HUB.idFromName(tenantId));

async function failedTasks(key: string, tag: string, n: number) {
  for (let i = 0; i < n; i++) {
    const taskId = expectSubmitted(await submit(key, "imagine", { prompt: `${marker("p")} ${tag}` }));
    expect((await driveToEnd(taskId, key)).status).toBe("FAILURE");
  }
}

describe("moderation strikes per tenant", () => {
  it("slow a tenant past the first threshold, then refuse it for a cooldown; nothing is charged", async () => {
    const policy = configFrom(env).moderation;
    const tenant = await tenantWithKey(100_000_000);
    await failedTasks(tenant.key, "[sim:moderation]", policy.slowAfter);
    // Slowed: one submit goes through, the next one within the interval is refused.
    expectSubmitted(await submit(tenant.key, "imagine", { prompt: marker("ok") }));
    const before = await ledgerOf(tenant.tenantId);
    const slowed = await submit(tenant.key, "imagine", { prompt: marker("slowed") });
    expectError(slowed, 429, "tenant_moderation_slowed");
    expect(Number(slowed.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await ledgerOf(tenant.tenantId)).toEqual(before);

    // More strikes reach the second threshold (a change published twice counts once).
    const hub = hubOf(tenant.tenantId);
    const failure = { status: "FAILURE", fail_reason: "Banned prompt detected by moderation" };
    for (let i = policy.slowAfter; i < policy.refuseAfter; i++) {
      const taskId = `task_strike_${i}_${crypto.randomUUID()}`;
      await hub.publish(taskId, Date.now(), { id: taskId, ...failure });
      await hub.publish(taskId, Date.now(), { id: taskId, ...failure });
    }
    const refused = await submit(tenant.key, "imagine", { prompt: marker("cooldown") });
    expectError(refused, 429, "tenant_moderation_cooldown");
    expect(refused.headers.get("retry-after")).toBe(String(policy.cooldownMs / 1000));
    expect(await ledgerOf(tenant.tenantId)).toEqual(before);

    const other = await tenantWithKey(100_000_000);
    expectSubmitted(await submit(other.key, "imagine", { prompt: marker("other") }));
  });

  it("other failures are not strikes", async () => {
    const policy = configFrom(env).moderation;
    const tenant = await tenantWithKey(100_000_000);
    await failedTasks(tenant.key, "[sim:fail]", policy.slowAfter);
    for (let i = 0; i < 2; i++)
      expectSubmitted(await submit(tenant.key, "imagine", { prompt: marker("ok") }));
  });
});
