-- A task's cost only grows while it is open: a /modal charge that races a CANCEL or
-- FAILURE settlement loses, and its whole admission batch rolls back.
CREATE TRIGGER tasks_no_cost_after_settlement BEFORE UPDATE OF cost ON tasks
  WHEN OLD.settled_at IS NOT NULL AND NEW.cost != OLD.cost
  BEGIN SELECT RAISE(ABORT, 'task_already_settled'); END;
