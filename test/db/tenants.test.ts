/**
 * db/tenants.ts writes the request bodies as validated (src/schemas/): one field table maps
 * each API field to its column, omitted fields keep the column's default or value, null
 * clears, and a cap below what is in flight comes back as a typed refusal.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createKey, createTenant, getKey, revokeKey, updateKey, updateTenant } from "../../src/db/tenants";

describe("tenants and keys in D1", () => {
  it("a tenant created with only a name takes the column defaults", async () => {
    const tenant = await createTenant(env.DB, { name: "defaults" });
    expect(tenant).toMatchObject({
      name: "defaults",
      status: "active",
      balance: 0,
      price_multiplier_bps: 10_000,
      max_inflight: 200,
      cors_origins: "[]",
    });
  });

  it("every API field lands in its column, encoded", async () => {
    const tenant = await createTenant(env.DB, {
      name: "full",
      price_multiplier_bps: 12_000,
      max_inflight: 7,
      cors_origins: ["https://app.example"],
    });
    expect(tenant).toMatchObject({ price_multiplier_bps: 12_000, max_inflight: 7 });
    expect(JSON.parse(tenant.cors_origins)).toEqual(["https://app.example"]);
    const { row } = await createKey(env.DB, tenant.id, {
      name: "k",
      expires_at: "2030-01-01T00:00:00Z",
      allowed_actions: ["imagine"],
      scopes: ["read", "generate"],
      rpm_limit: 5,
      max_inflight: 3,
      daily_cap_micros: 100,
      monthly_cap_micros: 1_000,
    });
    expect(row).toMatchObject({
      expires_at: Date.parse("2030-01-01T00:00:00Z"),
      allowed_actions: '["imagine"]',
      scopes: '["generate","read"]',
      rpm_limit: 5,
      max_inflight: 3,
      daily_cap: 100,
      monthly_cap: 1_000,
    });
  });

  it("omitted fields stay, null clears, and a revoked key does not change", async () => {
    const tenant = await createTenant(env.DB, { name: "patch" });
    const { row } = await createKey(env.DB, tenant.id, { name: "k", daily_cap_micros: 50, rpm_limit: 9 });
    expect(row).toMatchObject({ rpm_limit: 9, max_inflight: 50, daily_cap: 50, scopes: null });
    const changed = await updateKey(env.DB, tenant.id, row.id, { daily_cap_micros: null, name: "renamed" });
    expect(changed).toMatchObject({ name: "renamed", daily_cap: null, rpm_limit: 9 });
    await revokeKey(env.DB, tenant.id, row.id);
    const after = await updateKey(env.DB, tenant.id, row.id, { name: "again", status: "active" });
    expect(after).toMatchObject({ name: "renamed", status: "revoked" });
    expect(await updateKey(env.DB, tenant.id, "key_missing", { name: "x" })).toBeNull();
    expect(await updateTenant(env.DB, "ten_missing", { name: "x" })).toBeNull();
  });

  it("a cap below what is in flight is a typed refusal, and nothing changes", async () => {
    const tenant = await createTenant(env.DB, { name: "busy" });
    const { row } = await createKey(env.DB, tenant.id, { name: "k" });
    await env.DB.batch([
      env.DB.prepare("UPDATE tenants SET inflight = 3 WHERE id = ?1").bind(tenant.id),
      env.DB.prepare("UPDATE api_keys SET inflight = 3 WHERE id = ?1").bind(row.id),
    ]);
    expect(await updateTenant(env.DB, tenant.id, { max_inflight: 2, name: "no" })).toEqual({
      refused: "tenant_inflight_cap",
    });
    expect(await updateKey(env.DB, tenant.id, row.id, { max_inflight: 2 })).toEqual({
      refused: "key_inflight_cap",
    });
    expect(await getKey(env.DB, tenant.id, row.id)).toMatchObject({ max_inflight: 50 });
    expect(await updateTenant(env.DB, tenant.id, {})).toMatchObject({ name: "busy", max_inflight: 200 });
  });
});
