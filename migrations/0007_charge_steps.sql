-- Several charges per task, one per step ('submit', 'modal.1', 'modal.2', …), each refunded
-- at most once; admission reads what it enforces from D1; the upstream's own cost is kept
-- beside what the tenant paid, so margin is known per task.

-- 1. Charge steps. The ledger is append-only, so the back-fill lifts the UPDATE guard for
--    the length of this migration only.
ALTER TABLE ledger ADD COLUMN step TEXT;
DROP TRIGGER ledger_no_update;
UPDATE ledger SET step = CASE WHEN reason = 'modal' THEN 'modal.1' ELSE 'submit' END WHERE kind = 'charge';
UPDATE ledger SET step = (SELECT c.step FROM ledger c WHERE c.id = ledger.ref_id) WHERE kind = 'refund';
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger BEGIN SELECT RAISE(ABORT, 'ledger_append_only'); END;

DROP TRIGGER ledger_no_replace_by_task;
DROP INDEX ledger_one_charge_or_refund_per_task;
CREATE UNIQUE INDEX ledger_one_charge_per_step ON ledger(task_id, step) WHERE kind = 'charge';
CREATE UNIQUE INDEX ledger_one_refund_per_charge ON ledger(ref_id) WHERE kind = 'refund';
-- Settlement, refunds and reconciliation look up a task's rows by (task_id, kind).
CREATE INDEX ledger_by_task_kind ON ledger(task_id, kind);
-- ref_id REFERENCES ledger(id): with foreign keys on, SQLite looks up child rows by ref_id for
-- every new ledger row; without a plain index on it (the refund index is partial) that is a
-- scan of the whole ledger on every charge, refund and top-up.
CREATE INDEX ledger_by_ref ON ledger(ref_id);

-- INSERT OR REPLACE would delete the row it collides with without firing DELETE triggers:
-- refuse such an insert before SQLite resolves the conflict (see 0003).
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

-- 2. Admission reads the key's and tenant's status and limits from D1 in its own batch.
--    The rate window row records the state it saw; a key or tenant that is not usable
--    fails the named CHECK and rolls the batch back. Rate windows are per minute and
--    disposable, so the table is simply recreated.
DROP TABLE rate_windows;
CREATE TABLE rate_windows (
  key_id        TEXT NOT NULL,
  window_start  INTEGER NOT NULL,
  count         INTEGER NOT NULL,
  lim           INTEGER NOT NULL,
  key_state     TEXT NOT NULL,
  PRIMARY KEY (key_id, window_start),
  CONSTRAINT rate_limit CHECK (count <= lim),
  CONSTRAINT key_usable CHECK (key_state = 'active')
);
CREATE INDEX rate_windows_by_start ON rate_windows(window_start);

-- 3. Margin: what the upstream reported it billed (micro-USD, NULL when it did not say),
--    what the tenant paid net of refunds, and upstream jobs we were never paid for.
ALTER TABLE tasks ADD COLUMN upstream_cost INTEGER;
ALTER TABLE tasks ADD COLUMN net_charge INTEGER;
ALTER TABLE tasks ADD COLUMN unpriced_upstream_jobs INTEGER NOT NULL DEFAULT 0;
-- The orphan sweep and reconciliation look at open tasks by age.
CREATE INDEX tasks_open_by_age ON tasks(created_at) WHERE settled_at IS NULL;
-- Finance groups settled tasks by the day they finished.
CREATE INDEX tasks_by_finished ON tasks(finished_at);
