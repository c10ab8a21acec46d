import { MAX_WEBHOOK_ENDPOINTS_PER_TENANT, newEndpointId, newWebhookSecret } from "../domain/webhooks";

export interface EndpointRow {
  id: string;
  tenant_id: string;
  key_id: string | null;
  url: string;
  secret: string;
  events: "terminal" | "all";
  status: "active" | "disabled";
  created_at: number;
}

export interface DeliveryRow {
  id: string;
  endpoint_id: string;
  tenant_id: string;
  task_id: string;
  event_type: string;
  payload: string;
  status: "pending" | "delivered" | "failed";
  attempts: number;
  next_attempt_at: number | null;
  last_status: number | null;
  last_error: string | null;
  created_at: number;
  delivered_at: number | null;
}

export interface AttemptRow {
  id: number;
  delivery_id: string;
  attempted_at: number;
  status: number | null;
  error: string | null;
  duration_ms: number;
  replay: number;
}

/**
 * Creates an endpoint unless the tenant already has `maxActive` active ones (then null).
 * The count and the insert are one statement, so concurrent creates cannot pass the cap.
 */
export async function createEndpoint(
  db: D1Database,
  input: { tenantId: string; keyId: string | null; url: string; secret?: string; events: "terminal" | "all" },
  at = Date.now(),
  maxActive = MAX_WEBHOOK_ENDPOINTS_PER_TENANT,
): Promise<EndpointRow | null> {
  const row: EndpointRow = {
    id: newEndpointId(),
    tenant_id: input.tenantId,
    key_id: input.keyId,
    url: input.url,
    secret: input.secret ?? newWebhookSecret(),
    events: input.events,
    status: "active",
    created_at: at,
  };
  const result = await db
    .prepare(
      `INSERT INTO webhook_endpoints (id, tenant_id, key_id, url, secret, events, status, created_at)
       SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
       WHERE (SELECT COUNT(*) FROM webhook_endpoints WHERE tenant_id = ?2 AND status = 'active') < ?9`,
    )
    .bind(
      row.id,
      row.tenant_id,
      row.key_id,
      row.url,
      row.secret,
      row.events,
      row.status,
      row.created_at,
      maxActive,
    )
    .run();
  return result.meta.changes === 1 ? row : null;
}

export async function listEndpoints(db: D1Database, tenantId: string): Promise<EndpointRow[]> {
  const { results } = await db
    .prepare("SELECT * FROM webhook_endpoints WHERE tenant_id = ?1 ORDER BY created_at, id")
    .bind(tenantId)
    .all<EndpointRow>();
  return results;
}

/** The error a pending delivery of a disabled endpoint ends with (status failed, no more retries). */
export const ENDPOINT_DISABLED_ERROR = "endpoint disabled";

/**
 * Disables an endpoint and, in the same batch, fails its pending deliveries: the task
 * objects' scheduled retries find them settled (settledDeliveryIds) and drop them.
 */
export async function deleteEndpoint(db: D1Database, tenantId: string, id: string): Promise<boolean> {
  const [result] = await db.batch([
    db
      .prepare("UPDATE webhook_endpoints SET status = 'disabled' WHERE id = ?1 AND tenant_id = ?2")
      .bind(id, tenantId),
    db
      .prepare(
        `UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, last_error = ?3
         WHERE endpoint_id = ?1 AND status = 'pending' AND tenant_id = ?2`,
      )
      .bind(id, tenantId, ENDPOINT_DISABLED_ERROR),
  ]);
  return result!.meta.changes === 1;
}

/**
 * Whether the tenant has an active endpoint that a task created with `keyId` delivers to:
 * one index search (webhook_endpoints_by_tenant), meant to ride in the admission and
 * settlement batches so a tenant without endpoints costs its tasks no webhook round trip.
 */
export function hasEndpointsStatement(db: D1Database, tenantId: string, keyId: string): D1PreparedStatement {
  return db
    .prepare(
      `SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE tenant_id = ?1 AND status = 'active'
         AND (key_id IS NULL OR key_id = ?2)) AS has_endpoints`,
    )
    .bind(tenantId, keyId);
}

/** The answer of `hasEndpointsStatement` inside a batch's results. */
export const hasEndpointsIn = (result: D1Result | undefined): boolean =>
  (result?.results[0] as { has_endpoints?: number } | undefined)?.has_endpoints === 1;

/** The endpoints that want this event of a task created with `keyId`. */
export async function endpointsFor(db: D1Database, tenantId: string, keyId: string, terminal: boolean) {
  const { results } = await db
    .prepare(
      `SELECT * FROM webhook_endpoints WHERE tenant_id = ?1 AND status = 'active'
         AND (key_id IS NULL OR key_id = ?2) AND (events = 'all' OR ?3 = 1)`,
    )
    .bind(tenantId, keyId, terminal ? 1 : 0)
    .all<EndpointRow>();
  return results;
}

/**
 * Creates one delivery per endpoint. Ids derive from the message and endpoint, and the
 * insert ignores existing rows, so repeating this after a crash creates no duplicates.
 */
export async function createDeliveries(
  db: D1Database,
  endpoints: EndpointRow[],
  message: { messageKey: string; taskId: string; eventType: string; payload: string },
  at: number,
): Promise<DeliveryRow[]> {
  const rows: DeliveryRow[] = endpoints.map((endpoint) => ({
    id: `msg_${message.messageKey}_${endpoint.id.replace(/^wh_/, "")}`,
    endpoint_id: endpoint.id,
    tenant_id: endpoint.tenant_id,
    task_id: message.taskId,
    event_type: message.eventType,
    payload: message.payload,
    status: "pending",
    attempts: 0,
    next_attempt_at: at,
    last_status: null,
    last_error: null,
    created_at: at,
    delivered_at: null,
  }));
  if (rows.length) {
    await db.batch(
      rows.map((r) =>
        db
          .prepare(
            `INSERT OR IGNORE INTO webhook_deliveries (id, endpoint_id, tenant_id, task_id, event_type, payload, next_attempt_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)`,
          )
          .bind(
            r.id,
            r.endpoint_id,
            r.tenant_id,
            r.task_id,
            r.event_type,
            r.payload,
            r.next_attempt_at,
            r.created_at,
          ),
      ),
    );
  }
  return rows;
}

export interface AttemptResult {
  status: number | null;
  error: string | null;
  durationMs: number;
  at: number;
}

/**
 * Of these deliveries, the ones D1 no longer holds as pending (delivered or given up,
 * say by an operator's replay, or failed because their endpoint was disabled): the task
 * object drops their scheduled retries. A pending delivery whose endpoint is no longer
 * active (disabled after the fan-out, or gone) is failed here first, so it counts too.
 */
export async function settledDeliveryIds(db: D1Database, ids: string[]): Promise<Set<string>> {
  const settled = new Set<string>();
  for (let i = 0; i < ids.length; i += 90) {
    const chunk = ids.slice(i, i + 90);
    const placeholders = chunk.map((_, j) => `?${j + 1}`).join(", ");
    const error = `?${chunk.length + 1}`;
    const [, selected] = await db.batch<{ id: string }>([
      db
        .prepare(
          `UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, last_error = ${error}
           WHERE id IN (${placeholders}) AND status = 'pending'
             AND NOT EXISTS (SELECT 1 FROM webhook_endpoints e
                             WHERE e.id = webhook_deliveries.endpoint_id AND e.status = 'active')`,
        )
        .bind(...chunk, ENDPOINT_DISABLED_ERROR),
      db
        .prepare(`SELECT id FROM webhook_deliveries WHERE id IN (${placeholders}) AND status != 'pending'`)
        .bind(...chunk),
    ]);
    for (const row of selected!.results) settled.add(row.id);
  }
  return settled;
}

/** Delivery and attempt rows older than this go away in the hourly maintenance (WEBHOOK_RETENTION_DAYS). */
export const DEFAULT_WEBHOOK_RETENTION_DAYS = 30;
const PURGE_BATCH = 5_000;

/**
 * Deletes up to `batch` settled (delivered or failed) deliveries created before `before`,
 * with their attempts (attempts first: they reference the delivery). Pending deliveries
 * stay: their task object may still retry them, and the retry schedule ends within ~27 h.
 * Both statements are index searches (webhook_deliveries_by_time, webhook_attempts_by_delivery).
 * Returns how many deliveries went.
 */
export async function purgeWebhookHistory(db: D1Database, before: number, batch = PURGE_BATCH) {
  const old = `SELECT id FROM webhook_deliveries WHERE created_at < ?1 AND status != 'pending'
               ORDER BY created_at LIMIT ?2`;
  const [, deliveries] = await db.batch([
    db.prepare(`DELETE FROM webhook_attempts WHERE delivery_id IN (${old})`).bind(before, batch),
    db
      .prepare(
        `DELETE FROM webhook_deliveries WHERE id IN (${old})
           AND NOT EXISTS (SELECT 1 FROM webhook_attempts a WHERE a.delivery_id = webhook_deliveries.id)`,
      )
      .bind(before, batch),
  ]);
  return deliveries!.meta.changes;
}

/**
 * Records one attempt and the delivery's new state in one batch. A delivered message
 * stays delivered: an attempt that raced with a successful replay cannot undo it.
 */
export async function recordAttempt(
  db: D1Database,
  deliveryId: string,
  result: AttemptResult,
  outcome: { status: DeliveryRow["status"]; nextAttemptAt: number | null },
  replay = false,
): Promise<void> {
  await db.batch([
    db
      .prepare(
        `INSERT INTO webhook_attempts (delivery_id, attempted_at, status, error, duration_ms, replay)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)`,
      )
      .bind(deliveryId, result.at, result.status, result.error, result.durationMs, replay ? 1 : 0),
    db
      .prepare(
        `UPDATE webhook_deliveries SET attempts = attempts + 1,
           status = CASE WHEN status = 'delivered' THEN 'delivered' ELSE ?2 END,
           next_attempt_at = CASE WHEN status = 'delivered' THEN NULL ELSE ?3 END,
           last_status = ?4, last_error = ?5,
           delivered_at = CASE WHEN ?2 = 'delivered' THEN COALESCE(delivered_at, ?6) ELSE delivered_at END
         WHERE id = ?1`,
      )
      .bind(deliveryId, outcome.status, outcome.nextAttemptAt, result.status, result.error, result.at),
  ]);
}

export async function getDelivery(db: D1Database, id: string) {
  return db
    .prepare(
      `SELECT d.*, e.url, e.secret FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
       WHERE d.id = ?1`,
    )
    .bind(id)
    .first<DeliveryRow & { url: string; secret: string }>();
}

export async function listDeliveries(
  db: D1Database,
  filter: { tenantId?: string; taskId?: string; status?: string },
  limit: number,
  before?: string,
) {
  const { results } = await db
    .prepare(
      `SELECT * FROM webhook_deliveries WHERE (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR task_id = ?2)
         AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR id < ?4) ORDER BY id DESC LIMIT ?5`,
    )
    .bind(filter.tenantId ?? null, filter.taskId ?? null, filter.status ?? null, before ?? null, limit)
    .all<DeliveryRow>();
  return results;
}

export async function attemptsOf(db: D1Database, deliveryIds: string[]): Promise<AttemptRow[]> {
  if (!deliveryIds.length) return [];
  const placeholders = deliveryIds.map((_, i) => `?${i + 1}`).join(", ");
  const { results } = await db
    .prepare(`SELECT * FROM webhook_attempts WHERE delivery_id IN (${placeholders}) ORDER BY id`)
    .bind(...deliveryIds)
    .all<AttemptRow>();
  return results;
}
