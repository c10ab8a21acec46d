-- The ledger is append-only, but INSERT OR REPLACE deletes the row it collides with
-- without firing DELETE triggers (recursive_triggers is off), so a charge, refund or
-- top-up could be rewritten in place. These triggers refuse such an insert before SQLite
-- gets to resolve the conflict. The second one repeats the UNIQUE index's own message,
-- which admission maps to a client error (src/db/admission.ts refusalFor).
CREATE TRIGGER ledger_no_replace_by_id BEFORE INSERT ON ledger
  WHEN EXISTS (SELECT 1 FROM ledger WHERE id = NEW.id)
  BEGIN SELECT RAISE(ABORT, 'ledger_append_only'); END;

CREATE TRIGGER ledger_no_replace_by_task BEFORE INSERT ON ledger
  WHEN NEW.kind IN ('charge', 'refund')
    AND EXISTS (SELECT 1 FROM ledger WHERE task_id = NEW.task_id AND kind = NEW.kind)
  BEGIN SELECT RAISE(ABORT, 'UNIQUE constraint failed: ledger.task_id, ledger.kind'); END;
