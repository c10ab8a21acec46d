/**
 * The upstream pool's rows (migrations/0008_upstreams.sql). Keys arrive here already
 * encrypted (src/services/upstream-keys.ts); nothing here reads or returns a clear key.
 */
import { ulid } from "../domain/ids";
import type { SealedKey } from "../domain/upstream-crypto";
import { type Refused, refusedOr, UPSTREAM_CHECKS } from "./constraints";

/** The member configured by UPSTREAM_BASE_URL/UPSTREAM_API_KEY: its row holds only settings. */
export const DEFAULT_UPSTREAM_ID = "default";

export const newUpstreamId = () => `ups_${ulid()}`;

export interface UpstreamRow {
  id: string;
  name: string;
  /** null only for the default member (read from the environment). */
  base_url: string | null;
  api_key_ciphertext: string | null;
  api_key_iv: string | null;
  key_hint: string | null;
  weight: number;
  priority: number;
  max_inflight: number;
  /** A JSON array of actions, or null for every action. */
  actions: string | null;
  enabled: number;
  created_at: number;
  updated_at: number;
  disabled_at: number | null;
}

/** Settings an operator may set on any member, the default one included. */
export interface UpstreamSettings {
  name?: string;
  weight?: number;
  priority?: number;
  max_inflight?: number;
  actions?: readonly string[] | null;
  enabled?: boolean;
}

export interface UpstreamInsert extends UpstreamSettings {
  id: string;
  name: string;
  base_url: string;
  key: SealedKey;
}

export interface UpstreamUpdate extends UpstreamSettings {
  base_url?: string;
  key?: SealedKey;
}

/** The route validates first; these CHECKs are the backstop. */
const UPSTREAM_REFUSALS = UPSTREAM_CHECKS;
export type UpstreamRefusal = (typeof UPSTREAM_REFUSALS)[number];

const actionsJson = (actions: readonly string[] | null | undefined) =>
  actions === undefined ? undefined : actions === null ? null : JSON.stringify(actions);

export async function getUpstream(db: D1Database, id: string): Promise<UpstreamRow | null> {
  return db.prepare("SELECT * FROM upstreams WHERE id = ?1").bind(id).first<UpstreamRow>();
}

/**
 * The pool changes rarely and every submit routes over it: each isolate keeps the rows for a
 * few seconds (like the price table), so a submit stays at one D1 round trip. A write on
 * this isolate forgets them at once; other isolates see a change within POOL_CACHE_MS.
 */
export const POOL_CACHE_MS = 5_000;
let cachedPool: { rows: UpstreamRow[]; until: number } | null = null;

export function forgetCachedUpstreams(): void {
  cachedPool = null;
}

/** `listUpstreams`, served from the isolate's short cache. */
export async function cachedUpstreams(db: D1Database, now = Date.now()): Promise<UpstreamRow[]> {
  if (cachedPool && cachedPool.until > now) return cachedPool.rows;
  const rows = await listUpstreams(db);
  cachedPool = { rows, until: now + POOL_CACHE_MS };
  return rows;
}

/** Every member, the default first, then in creation order (a pool is small: no paging). */
export async function listUpstreams(db: D1Database): Promise<UpstreamRow[]> {
  const { results } = await db
    .prepare("SELECT * FROM upstreams ORDER BY id = ?1 DESC, created_at, id")
    .bind(DEFAULT_UPSTREAM_ID)
    .all<UpstreamRow>();
  return results;
}

/** Omitted settings take the column defaults of migrations/0008_upstreams.sql. */
export async function insertUpstream(
  db: D1Database,
  input: UpstreamInsert,
  at = Date.now(),
): Promise<UpstreamRow | Refused<UpstreamRefusal>> {
  const enabled = input.enabled ?? true;
  const columns: Record<string, unknown> = {
    id: input.id,
    name: input.name,
    base_url: input.base_url,
    api_key_ciphertext: input.key.ciphertext,
    api_key_iv: input.key.iv,
    key_hint: input.key.hint,
    weight: input.weight,
    priority: input.priority,
    max_inflight: input.max_inflight,
    actions: actionsJson(input.actions),
    enabled: enabled ? 1 : 0,
    created_at: at,
    updated_at: at,
    disabled_at: enabled ? null : at,
  };
  const given = Object.entries(columns).filter(([, value]) => value !== undefined);
  const write = db
    .prepare(
      `INSERT INTO upstreams (${given.map(([column]) => column).join(", ")})
       VALUES (${given.map((_, i) => `?${i + 1}`).join(", ")}) RETURNING *`,
    )
    .bind(...given.map(([, value]) => value))
    .first<UpstreamRow>();
  const inserted = (await refusedOr(write, UPSTREAM_REFUSALS))!;
  forgetCachedUpstreams();
  return inserted;
}

/**
 * Changes the given fields only; null when there is no such member. Disabling stamps
 * disabled_at (kept while it stays disabled), enabling clears it.
 */
export async function updateUpstream(
  db: D1Database,
  id: string,
  changes: UpstreamUpdate,
  at = Date.now(),
): Promise<UpstreamRow | null | Refused<UpstreamRefusal>> {
  const sets: string[] = ["updated_at = ?2"];
  const values: unknown[] = [id, at];
  const set = (column: string, value: unknown) => {
    values.push(value);
    sets.push(`${column} = ?${values.length}`);
  };
  if (changes.name !== undefined) set("name", changes.name);
  if (changes.base_url !== undefined) set("base_url", changes.base_url);
  if (changes.key) {
    set("api_key_ciphertext", changes.key.ciphertext);
    set("api_key_iv", changes.key.iv);
    set("key_hint", changes.key.hint);
  }
  if (changes.weight !== undefined) set("weight", changes.weight);
  if (changes.priority !== undefined) set("priority", changes.priority);
  if (changes.max_inflight !== undefined) set("max_inflight", changes.max_inflight);
  if (changes.actions !== undefined) set("actions", actionsJson(changes.actions));
  if (changes.enabled !== undefined) {
    set("enabled", changes.enabled ? 1 : 0);
    sets.push(changes.enabled ? "disabled_at = NULL" : "disabled_at = coalesce(disabled_at, ?2)");
  }
  const write = db
    .prepare(`UPDATE upstreams SET ${sets.join(", ")} WHERE id = ?1 RETURNING *`)
    .bind(...values)
    .first<UpstreamRow>();
  const updated = await refusedOr(write, UPSTREAM_REFUSALS);
  forgetCachedUpstreams();
  return updated;
}

/** Disables a member (its tasks in flight keep polling it); null when there is no such member. */
export async function disableUpstream(db: D1Database, id: string, at = Date.now()) {
  return updateUpstream(db, id, { enabled: false }, at);
}
