import { inject } from "vitest";

export const gatewayUrl = () => inject("gatewayUrl");
export const simulatorUrl = () => inject("simulatorUrl");
export const adminToken = () => inject("adminToken");

export async function api(
  method: string,
  path: string,
  options: { key?: string; admin?: boolean; body?: unknown } = {},
) {
  const headers: Record<string, string> = {};
  if (options.admin) headers.authorization = `Bearer ${adminToken()}`;
  if (options.key) headers.authorization = `Bearer ${options.key}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${gatewayUrl()}${path}`, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: response.status, body, headers: response.headers };
}

/** A tenant with funds and a key, through the public admin API. */
export async function tenantWithKey(options: { corsOrigins?: string[]; balanceMicros?: number } = {}) {
  const tenant = await api("POST", "/admin/tenants", {
    admin: true,
    body: { name: `e2e-${Date.now()}`, cors_origins: options.corsOrigins ?? [] },
  });
  await api("POST", `/admin/tenants/${tenant.body.id}/topups`, {
    admin: true,
    body: { amount_micros: options.balanceMicros ?? 10_000_000, reason: "e2e" },
  });
  const key = await api("POST", `/admin/tenants/${tenant.body.id}/keys`, {
    admin: true,
    body: { name: "e2e" },
  });
  return { tenantId: tenant.body.id as string, key: key.body.key as string };
}

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
