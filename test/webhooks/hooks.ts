/**
 * Webhook test helpers. Every outbound fetch of the gateway lands in the simulator, so
 * `https://hooks.test/_sim/webhooks/<sink>` is a sink that records each request (headers
 * and raw body); sinks are unique per test, so files running in parallel never share one.
 */
import { expect } from "vitest";
import { verifyWebhook } from "../../src/domain/webhooks";
import { call, sim } from "../helpers";

export interface Received {
  at: number;
  headers: Record<string, string>;
  body: string;
}

export function newSink(label = "s") {
  const name = `${label}-${crypto.randomUUID()}`;
  return { name, url: `https://hooks.test/_sim/webhooks/${name}` };
}

export async function received(sink: string): Promise<Received[]> {
  return sim("GET", `/_sim/webhooks/${sink}`);
}

/** The sink's next `count` answers are `status` (then 200 again). */
export async function failNext(sink: string, count: number, status = 503) {
  const res = await sim("POST", `/_sim/webhook-sinks/${sink}`, { fail_next: count, status });
  expect(res).toMatchObject({ fail_next: count, status });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Waits (briefly) until the sink has at least `count` requests (those `which` keeps);
 * deliveries run in the background.
 */
export async function waitReceived(
  sink: string,
  count: number,
  which: (request: Received) => boolean = () => true,
  tries = 150,
): Promise<Received[]> {
  let got: Received[] = [];
  for (let i = 0; i < tries; i++) {
    got = (await received(sink)).filter(which);
    if (got.length >= count) return got;
    await sleep(20);
  }
  throw new Error(`sink ${sink} got ${got.length} requests, expected ${count}`);
}

/** Keeps the requests about one task. */
export const aboutTask = (taskId: string) => (request: Received) =>
  JSON.parse(request.body).data.id === taskId;

/** Gives background deliveries time to happen, then returns what the sink holds. */
export async function settledReceived(sink: string): Promise<Received[]> {
  await sleep(300);
  return received(sink);
}

export async function registerAdmin(
  tenantId: string,
  body: { url: string; events?: "terminal" | "all"; key_id?: string; secret?: string },
) {
  const res = await call("POST", `/admin/tenants/${tenantId}/webhooks`, { admin: true, body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: string; secret: string; url: string; events: string; key_id: string | null };
}

export async function deliveriesOf(query: Record<string, string>) {
  const res = await call("GET", `/admin/webhook-deliveries?${new URLSearchParams(query)}`, { admin: true });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.data as any[];
}

/** Asserts the request carries a valid Standard Webhooks signature for `secret`; returns the payload. */
export async function expectSigned(request: Received, secret: string) {
  const headers = {
    id: request.headers["webhook-id"]!,
    timestamp: request.headers["webhook-timestamp"]!,
    signature: request.headers["webhook-signature"]!,
  };
  expect(headers.id).toMatch(/^msg_/);
  expect(headers.timestamp).toMatch(/^\d+$/);
  expect(headers.signature).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
  const now = Math.floor(Date.now() / 1000);
  expect(Math.abs(now - Number(headers.timestamp))).toBeLessThan(60);
  expect(await verifyWebhook(secret, headers, request.body, now)).toBe(true);
  return JSON.parse(request.body) as { type: string; timestamp: string; data: Record<string, any> };
}
