-- Hosted results, the rest of issue 14: storage priced per GB-month (a ledger row of its own
-- kind), bytes served per tenant and day, and capability links.

-- 1. The ledger gains the kind 'storage'. SQLite cannot change a CHECK in place: the table is
-- rebuilt with the same columns, rows, indexes and triggers. Its triggers go first (a DROP
-- TABLE must not meet the append-only guard); the self-reference of ref_id is checked at the end.
PRAGMA defer_foreign_keys = on;
DROP TRIGGER ledger_no_delete;
DROP TRIGGER ledger_no_update;
DROP TRIGGER ledger_no_replace_by_id;
DROP TRIGGER ledger_step_required;
DROP TRIGGER ledger_no_replace_charge;
DROP TRIGGER ledger_no_replace_refund;
CREATE TABLE ledger_rebuilt (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id      TEXT NOT NULL,
  key_id         TEXT,
  task_id        TEXT,
  kind           TEXT NOT NULL CHECK (kind IN ('topup', 'charge', 'refund', 'adjustment', 'storage')),
  action         TEXT,
  amount         INTEGER NOT NULL,
  balance_after  INTEGER NOT NULL,
  reason         TEXT,
  ref_id         INTEGER REFERENCES ledger(id),
  created_at     INTEGER NOT NULL,
  step           TEXT
);
INSERT INTO ledger_rebuilt (id, tenant_id, key_id, task_id, kind, action, amount, balance_after, reason, ref_id, created_at, step)
  SELECT id, tenant_id, key_id, task_id, kind, action, amount, balance_after, reason, ref_id, created_at, step FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_rebuilt RENAME TO ledger;
CREATE INDEX ledger_by_tenant_time ON ledger(tenant_id, created_at);
CREATE INDEX ledger_by_time ON ledger(created_at);
CREATE INDEX ledger_by_task ON ledger(task_id);
CREATE INDEX ledger_by_key_time ON ledger(key_id, created_at);
CREATE UNIQUE INDEX ledger_one_charge_per_step ON ledger(task_id, step) WHERE kind = 'charge';
CREATE UNIQUE INDEX ledger_one_refund_per_charge ON ledger(ref_id) WHERE kind = 'refund';
CREATE INDEX ledger_by_task_kind ON ledger(task_id, kind);
CREATE INDEX ledger_by_ref ON ledger(ref_id);
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger BEGIN SELECT RAISE(ABORT, 'ledger_append_only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger BEGIN SELECT RAISE(ABORT, 'ledger_append_only'); END;
CREATE TRIGGER ledger_no_replace_by_id BEFORE INSERT ON ledger
  WHEN EXISTS (SELECT 1 FROM ledger WHERE id = NEW.id)
  BEGIN SELECT RAISE(ABORT, 'ledger_append_only'); END;
CREATE TRIGGER ledger_step_required BEFORE INSERT ON ledger
  WHEN NEW.kind IN ('charge', 'refund') AND NEW.step IS NULL
  BEGIN SELECT RAISE(ABORT, 'ledger_step_required'); END;
CREATE TRIGGER ledger_no_replace_charge BEFORE INSERT ON ledger
  WHEN NEW.kind = 'charge'
    AND EXISTS (SELECT 1 FROM ledger WHERE task_id = NEW.task_id AND step = NEW.step AND kind = 'charge')
  BEGIN SELECT RAISE(ABORT, 'charge_step_exists'); END;
CREATE TRIGGER ledger_no_replace_refund BEFORE INSERT ON ledger
  WHEN NEW.kind = 'refund'
    AND EXISTS (SELECT 1 FROM ledger WHERE ref_id = NEW.ref_id AND kind = 'refund')
  BEGIN SELECT RAISE(ABORT, 'refund_exists'); END;

-- 2. Storage price, micro-USD per GB (10^9 bytes) per 30-day month; 0 = free (the default).
ALTER TABLE tenants ADD COLUMN storage_price_micros_per_gb_month INTEGER NOT NULL DEFAULT 0
  CHECK (storage_price_micros_per_gb_month >= 0);

-- One row per tenant and UTC day charged for storage: its primary key makes the daily charge
-- happen once however often the cron runs. `remainder` (byte-days x price not yet worth a
-- whole micro-USD, below 30 x 10^9) and `owed_micros` (a charge the balance could not cover)
-- carry to the next day, so nothing is rounded away.
CREATE TABLE asset_storage_days (
  tenant_id    TEXT NOT NULL REFERENCES tenants(id),
  day          TEXT NOT NULL,
  bytes        INTEGER NOT NULL CHECK (bytes >= 0),
  price        INTEGER NOT NULL,
  charged_micros INTEGER NOT NULL CHECK (charged_micros >= 0),
  owed_micros  INTEGER NOT NULL CHECK (owed_micros >= 0),
  remainder    INTEGER NOT NULL CHECK (remainder >= 0),
  created_at   INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, day)
);

-- Bytes answered per tenant and UTC day (summed in the isolate, flushed in batches).
CREATE TABLE asset_served_days (
  tenant_id  TEXT NOT NULL,
  day        TEXT NOT NULL,
  bytes      INTEGER NOT NULL DEFAULT 0,
  responses  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, day)
);

-- 3. Links: `signed` (HMAC, expiring) or `capability` (an unguessable token in the path, valid
-- as long as the file is kept).
ALTER TABLE tenants ADD COLUMN asset_links TEXT NOT NULL DEFAULT 'signed'
  CHECK (asset_links IN ('signed', 'capability'));
ALTER TABLE asset_files ADD COLUMN capability TEXT;
CREATE UNIQUE INDEX asset_files_by_capability ON asset_files (capability) WHERE capability IS NOT NULL;

-- The daily storage charge visits only tenants with a price (a partial index, not a scan of tenants).
CREATE INDEX tenants_with_storage_price ON tenants (id) WHERE storage_price_micros_per_gb_month > 0;
CREATE INDEX asset_served_days_by_day ON asset_served_days (day);
CREATE INDEX asset_storage_days_by_day ON asset_storage_days (day);
