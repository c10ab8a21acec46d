/**
 * Pool members for the pool tests: each member is a simulator account of its own
 * (its own `sk-sim-…` key; every outbound fetch reaches the simulator whatever the member's
 * host), so the simulator's per-key counters say which member got what.
 */
import { expect } from "vitest";
import { call, sim } from "../../helpers";
import { marker } from "../../routes/route-helpers";

export interface Member {
  id: string;
  key: string;
}

/**
 * Adds a member through the admin API. `timeScale` 1 keeps its tasks open (simulated time at
 * real speed) until the test moves the member's clock; without it, the simulator's default.
 */
export async function addMember(
  settings: Record<string, unknown> = {},
  options: { name?: string; timeScale?: number } = {},
): Promise<Member> {
  const name = options.name ?? "acct";
  const key = `sk-sim-${marker(name)}`;
  const res = await call("POST", "/admin/upstreams", {
    admin: true,
    body: { name, base_url: "https://mj.example.com", api_key: key, ...settings },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  if (options.timeScale !== undefined)
    await sim("POST", "/_sim/config", { time_scale: options.timeScale, key });
  return { id: res.body.id, key };
}

/** What the simulator saw of this member's account. */
export const statsOf = (member: Member) => sim("GET", `/_sim/stats?key=${encodeURIComponent(member.key)}`);
