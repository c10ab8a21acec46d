-- Webhook endpoints registered by the operator or the tenant; key_id limits one to a key's tasks.
CREATE TABLE webhook_endpoints (
  id          TEXT PRIMARY KEY,
  tenant_id   TEXT NOT NULL REFERENCES tenants(id),
  key_id      TEXT REFERENCES api_keys(id),
  url         TEXT NOT NULL,
  -- The signing secret must be readable to sign each delivery (Standard Webhooks "whsec_…").
  secret      TEXT NOT NULL,
  events      TEXT NOT NULL DEFAULT 'terminal' CHECK (events IN ('terminal', 'all')),
  status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  created_at  INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints(tenant_id);

-- One row per message and endpoint; webhook-id is the row id, stable across retries and replays.
CREATE TABLE webhook_deliveries (
  id              TEXT PRIMARY KEY,
  endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints(id),
  tenant_id       TEXT NOT NULL,
  task_id         TEXT NOT NULL,
  event_type      TEXT NOT NULL,
  payload         TEXT NOT NULL,
  status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER,
  last_status     INTEGER,
  last_error      TEXT,
  created_at      INTEGER NOT NULL,
  delivered_at    INTEGER
);
CREATE INDEX webhook_deliveries_by_tenant ON webhook_deliveries(tenant_id, created_at);
CREATE INDEX webhook_deliveries_by_task ON webhook_deliveries(task_id);

CREATE TABLE webhook_attempts (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  delivery_id   TEXT NOT NULL REFERENCES webhook_deliveries(id),
  attempted_at  INTEGER NOT NULL,
  status        INTEGER,
  error         TEXT,
  duration_ms   INTEGER NOT NULL,
  replay        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts(delivery_id);
