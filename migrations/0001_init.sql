-- Money is integer micro-USD everywhere (1 USD = 1,000,000). Limits are named CHECK
-- constraints so that one failing statement in the admission batch rolls the whole
-- batch back and its name tells us which limit refused the request.

CREATE TABLE tenants (
  id               TEXT PRIMARY KEY,
  name             TEXT NOT NULL,
  status           TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
  balance          INTEGER NOT NULL DEFAULT 0,
  price_multiplier_bps INTEGER NOT NULL DEFAULT 10000 CHECK (price_multiplier_bps > 0),
  inflight         INTEGER NOT NULL DEFAULT 0,
  max_inflight     INTEGER NOT NULL DEFAULT 200,
  cors_origins     TEXT NOT NULL DEFAULT '[]',
  created_at       INTEGER NOT NULL,
  CONSTRAINT balance_nonnegative CHECK (balance >= 0),
  CONSTRAINT tenant_inflight_cap CHECK (inflight <= max_inflight)
);

CREATE TABLE api_keys (
  id               TEXT PRIMARY KEY,
  tenant_id        TEXT NOT NULL REFERENCES tenants(id),
  name             TEXT NOT NULL,
  prefix           TEXT NOT NULL,
  secret_hash      TEXT NOT NULL UNIQUE,
  status           TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled', 'revoked')),
  expires_at       INTEGER,
  allowed_actions  TEXT,
  rpm_limit        INTEGER NOT NULL DEFAULT 60 CHECK (rpm_limit > 0),
  inflight         INTEGER NOT NULL DEFAULT 0,
  max_inflight     INTEGER NOT NULL DEFAULT 50,
  daily_cap        INTEGER,
  monthly_cap      INTEGER,
  created_at       INTEGER NOT NULL,
  revoked_at       INTEGER,
  CONSTRAINT key_inflight_cap CHECK (inflight <= max_inflight)
);
CREATE INDEX api_keys_by_tenant ON api_keys(tenant_id);

-- One row per key and minute; the admission batch increments it.
CREATE TABLE rate_windows (
  key_id        TEXT NOT NULL,
  window_start  INTEGER NOT NULL,
  count         INTEGER NOT NULL,
  lim           INTEGER NOT NULL,
  PRIMARY KEY (key_id, window_start),
  CONSTRAINT rate_limit CHECK (count <= lim)
);

-- Spend per key and period ('d2026-11-29', 'm2026-11'); cap NULL means no cap.
CREATE TABLE key_spend (
  key_id   TEXT NOT NULL,
  period   TEXT NOT NULL,
  spent    INTEGER NOT NULL,
  cap      INTEGER,
  PRIMARY KEY (key_id, period),
  CONSTRAINT key_budget CHECK (cap IS NULL OR spent <= cap)
);

CREATE TABLE tasks (
  id              TEXT PRIMARY KEY,
  tenant_id       TEXT NOT NULL,
  key_id          TEXT NOT NULL,
  action          TEXT NOT NULL,
  parent_task_id  TEXT,
  upstream_task_id TEXT,
  status          TEXT NOT NULL,
  cost            INTEGER NOT NULL DEFAULT 0,
  created_at      INTEGER NOT NULL,
  finished_at     INTEGER,
  settled_at      INTEGER,
  fail_reason     TEXT,
  late_upstream_status TEXT
);
CREATE INDEX tasks_by_tenant ON tasks(tenant_id, created_at);

-- Append-only. amount is signed (charge < 0, refund/topup > 0).
CREATE TABLE ledger (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id      TEXT NOT NULL,
  key_id         TEXT,
  task_id        TEXT,
  kind           TEXT NOT NULL CHECK (kind IN ('topup', 'charge', 'refund', 'adjustment')),
  action         TEXT,
  amount         INTEGER NOT NULL,
  balance_after  INTEGER NOT NULL,
  reason         TEXT,
  ref_id         INTEGER REFERENCES ledger(id),
  created_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX ledger_one_charge_or_refund_per_task ON ledger(task_id, kind) WHERE kind IN ('charge', 'refund');
CREATE INDEX ledger_by_tenant_time ON ledger(tenant_id, created_at);
CREATE INDEX ledger_by_time ON ledger(created_at);
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger BEGIN SELECT RAISE(ABORT, 'ledger_append_only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger BEGIN SELECT RAISE(ABORT, 'ledger_append_only'); END;

CREATE TABLE idempotency (
  tenant_id     TEXT NOT NULL,
  idem_key      TEXT NOT NULL,
  request_hash  TEXT NOT NULL,
  task_id       TEXT NOT NULL,
  response      TEXT,
  created_at    INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, idem_key)
);
CREATE INDEX idempotency_by_time ON idempotency(created_at);

-- Upstream list prices per (action, speed, resolution); '' where a dimension does not apply.
CREATE TABLE prices (
  action         TEXT NOT NULL,
  speed          TEXT NOT NULL DEFAULT '',
  resolution     TEXT NOT NULL DEFAULT '',
  list_micros    INTEGER NOT NULL CHECK (list_micros >= 0),
  override_micros INTEGER CHECK (override_micros IS NULL OR override_micros >= 0),
  updated_at     INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (action, speed, resolution)
);

CREATE TABLE settings (
  name   TEXT PRIMARY KEY,
  value  TEXT NOT NULL
);
INSERT INTO settings (name, value) VALUES ('markup_bps', '2000');

INSERT INTO prices (action, speed, resolution, list_micros) VALUES
  ('imagine', 'relax', '', 45040), ('imagine', 'fast', '', 55040), ('imagine', 'turbo', '', 100000),
  ('video', '', '480p', 200000), ('video', '', '720p', 400000),
  ('inpaint', 'relax', '', 0), ('inpaint', 'fast', '', 0), ('inpaint', 'turbo', '', 0);
-- Every other image action costs 0.05504 (turbo 0.10) upstream.
INSERT INTO prices (action, speed, resolution, list_micros) VALUES
  ('edits', 'relax', '', 55040), ('edits', 'fast', '', 55040), ('edits', 'turbo', '', 100000),
  ('blend', 'relax', '', 55040), ('blend', 'fast', '', 55040), ('blend', 'turbo', '', 100000),
  ('describe', 'relax', '', 55040), ('describe', 'fast', '', 55040), ('describe', 'turbo', '', 100000),
  ('upscale', 'relax', '', 55040), ('upscale', 'fast', '', 55040), ('upscale', 'turbo', '', 100000),
  ('variation', 'relax', '', 55040), ('variation', 'fast', '', 55040), ('variation', 'turbo', '', 100000),
  ('high-variation', 'relax', '', 55040), ('high-variation', 'fast', '', 55040), ('high-variation', 'turbo', '', 100000),
  ('low-variation', 'relax', '', 55040), ('low-variation', 'fast', '', 55040), ('low-variation', 'turbo', '', 100000),
  ('reroll', 'relax', '', 55040), ('reroll', 'fast', '', 55040), ('reroll', 'turbo', '', 100000),
  ('zoom', 'relax', '', 55040), ('zoom', 'fast', '', 55040), ('zoom', 'turbo', '', 100000),
  ('pan', 'relax', '', 55040), ('pan', 'fast', '', 55040), ('pan', 'turbo', '', 100000),
  ('modal', 'relax', '', 55040), ('modal', 'fast', '', 55040), ('modal', 'turbo', '', 100000),
  ('remix-strong', 'relax', '', 55040), ('remix-strong', 'fast', '', 55040), ('remix-strong', 'turbo', '', 100000),
  ('remix-subtle', 'relax', '', 55040), ('remix-subtle', 'fast', '', 55040), ('remix-subtle', 'turbo', '', 100000);
