-- History leaves the hot database (issue 12, item 6). Settled tasks and their ledger rows older
-- than ARCHIVE_AFTER_DAYS move to gzip NDJSON objects in R2 (ARCHIVE_BUCKET), one object per
-- tenant, month and batch (src/services/archive.ts). The ledger stays append-only for everyone
-- else: a row can leave only inside an archive commit, and its amount moves, by trigger, into
-- its tenant's checkpoint, so balance = checkpoint + Σ hot ledger holds after every statement.

-- What has left the hot ledger, per tenant: Σ amount and counts of archived rows and tasks.
CREATE TABLE ledger_checkpoints (
  tenant_id       TEXT PRIMARY KEY REFERENCES tenants(id),
  archived_sum    INTEGER NOT NULL DEFAULT 0,
  archived_rows   INTEGER NOT NULL DEFAULT 0,
  archived_tasks  INTEGER NOT NULL DEFAULT 0,
  updated_at      INTEGER NOT NULL
);

-- One row per R2 object, written (state 'open') in the commit batch only after the object was
-- put and read back; the batch's deletes count themselves into it (triggers below) and its last
-- statement marks it committed, which the CHECK refuses unless exactly the rows and the sum the
-- object holds were deleted. Readers list objects here, never in R2, so an object put by a run
-- that died before its commit is never read (the rerun overwrites it: its key is deterministic).
CREATE TABLE archive_objects (
  object_key     TEXT PRIMARY KEY,
  tenant_id      TEXT NOT NULL REFERENCES tenants(id),
  month          TEXT NOT NULL,
  state          TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'committed')),
  ledger_rows    INTEGER NOT NULL,
  ledger_sum     INTEGER NOT NULL,
  task_rows      INTEGER NOT NULL,
  -- Ledger ids and created_at span of the rows inside (NULL when it holds only tasks).
  min_id         INTEGER,
  max_id         INTEGER,
  first_at       INTEGER,
  last_at        INTEGER,
  bytes          INTEGER NOT NULL,
  deleted_rows   INTEGER NOT NULL DEFAULT 0,
  deleted_sum    INTEGER NOT NULL DEFAULT 0,
  deleted_tasks  INTEGER NOT NULL DEFAULT 0,
  created_at     INTEGER NOT NULL,
  CONSTRAINT archive_object_complete CHECK (state = 'open'
    OR (deleted_rows = ledger_rows AND deleted_sum = ledger_sum AND deleted_tasks = task_rows))
);
CREATE UNIQUE INDEX archive_objects_one_open_per_tenant ON archive_objects(tenant_id) WHERE state = 'open';
-- Ledger reads find the objects overlapping their range, per tenant or across tenants.
CREATE INDEX archive_objects_by_tenant_time ON archive_objects(tenant_id, last_at);
CREATE INDEX archive_objects_by_time ON archive_objects(last_at);

-- The append-only guard, narrowed: a row may be deleted only while its tenant has an open
-- archive object whose id span covers it and a checkpoint row, and only when its task (if any)
-- is settled. Everything else is refused as before.
DROP TRIGGER ledger_no_delete;
CREATE TRIGGER ledger_delete_only_archived BEFORE DELETE ON ledger
  WHEN NOT EXISTS (SELECT 1 FROM archive_objects o WHERE o.tenant_id = OLD.tenant_id AND o.state = 'open'
                     AND OLD.id BETWEEN o.min_id AND o.max_id)
    OR NOT EXISTS (SELECT 1 FROM ledger_checkpoints c WHERE c.tenant_id = OLD.tenant_id)
    OR (OLD.task_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM tasks k WHERE k.id = OLD.task_id AND k.settled_at IS NOT NULL))
  BEGIN SELECT RAISE(ABORT, 'ledger_append_only'); END;

-- Money never vanishes: whatever leaves the ledger lands in the checkpoint, in the same statement.
CREATE TRIGGER ledger_delete_moves_to_checkpoint AFTER DELETE ON ledger
  BEGIN
    UPDATE ledger_checkpoints SET archived_sum = archived_sum + OLD.amount, archived_rows = archived_rows + 1
      WHERE tenant_id = OLD.tenant_id;
    UPDATE archive_objects SET deleted_rows = deleted_rows + 1, deleted_sum = deleted_sum + OLD.amount
      WHERE tenant_id = OLD.tenant_id AND state = 'open';
  END;

-- A task row leaves only with an open archive object, settled, and after all its ledger rows.
CREATE TRIGGER tasks_delete_only_archived BEFORE DELETE ON tasks
  WHEN OLD.settled_at IS NULL
    OR NOT EXISTS (SELECT 1 FROM archive_objects o WHERE o.tenant_id = OLD.tenant_id AND o.state = 'open')
    OR EXISTS (SELECT 1 FROM ledger l WHERE l.task_id = OLD.id)
  BEGIN SELECT RAISE(ABORT, 'task_not_archivable'); END;

CREATE TRIGGER tasks_delete_counted AFTER DELETE ON tasks
  BEGIN
    UPDATE ledger_checkpoints SET archived_tasks = archived_tasks + 1 WHERE tenant_id = OLD.tenant_id;
    UPDATE archive_objects SET deleted_tasks = deleted_tasks + 1
      WHERE tenant_id = OLD.tenant_id AND state = 'open';
  END;

-- The archive job finds a tenant's oldest top-ups and adjustments without walking its charges.
CREATE INDEX ledger_credits_by_tenant_time ON ledger(tenant_id, created_at) WHERE task_id IS NULL;

-- Usage of archived history, per tenant, UTC day, key and action ('' for none), summed in the
-- commit batch from the rows it deletes: usage reads add it to the hot ledger's totals without
-- opening R2 objects.
CREATE TABLE archive_usage (
  tenant_id        TEXT NOT NULL,
  day              TEXT NOT NULL,
  key_id           TEXT NOT NULL,
  action           TEXT NOT NULL,
  charged_micros   INTEGER NOT NULL,
  refunded_micros  INTEGER NOT NULL,
  charged_tasks    INTEGER NOT NULL,
  refunded_tasks   INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, day, key_id, action)
);
CREATE INDEX archive_usage_by_day ON archive_usage(day);
