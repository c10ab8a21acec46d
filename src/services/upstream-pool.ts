/**
 * The pool as routing and forwarding need it: each member's live state (from its
 * UpstreamGate) in the shape src/domain/upstream-routing.ts picks from, and a member's URL
 * and clear key for a request (the default member's from the environment, the others'
 * unsealed under UPSTREAM_KEY_SECRET). Keys go from here to the upstream request only.
 */
import { DEFAULT_UPSTREAM_ID, getUpstream, listUpstreams, type UpstreamRow } from "../db/upstreams";
import { openKey } from "../domain/upstream-crypto";
import type { PoolMember } from "../domain/upstream-routing";
import { configFrom, type Env } from "../env";
import { gateOf, upstreamKeySecret } from "./upstreams";

export { gateOf };

export interface UpstreamCredentials {
  baseUrl: string;
  apiKey: string;
}

/** Every member with its live in-flight count and circuit, one gate call each (a pool is small). */
export async function poolMembers(env: Env): Promise<PoolMember[]> {
  const rows = await listUpstreams(env.DB);
  return Promise.all(
    rows.map(async (row) => {
      const status = await gateOf(env, row.id).status();
      return memberOf(row, status.inflight, status.admitting);
    }),
  );
}

export function memberOf(row: UpstreamRow, inflight: number, admitting: boolean): PoolMember {
  return {
    id: row.id,
    weight: row.weight,
    priority: row.priority,
    maxInflight: row.max_inflight,
    inflight,
    enabled: row.enabled === 1,
    actions: row.actions === null ? null : JSON.parse(row.actions),
    admitting,
  };
}

/**
 * Where and with which key to reach a member, disabled ones included (their tasks keep
 * polling them); null when there is no such member.
 */
export async function upstreamCredentials(env: Env, upstreamId: string): Promise<UpstreamCredentials | null> {
  const config = configFrom(env);
  if (upstreamId === DEFAULT_UPSTREAM_ID) {
    return { baseUrl: config.upstreamBaseUrl, apiKey: config.upstreamApiKey };
  }
  const row = await getUpstream(env.DB, upstreamId);
  if (!row) return null;
  const apiKey = await openKey(upstreamKeySecret(env), row.id, {
    ciphertext: row.api_key_ciphertext!,
    iv: row.api_key_iv!,
  });
  return { baseUrl: row.base_url!, apiKey };
}
