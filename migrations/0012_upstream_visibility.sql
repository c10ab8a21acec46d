-- The pool member a task was submitted to, written at settlement (the task's object knows it;
-- admission does not yet, failover decides). NULL: settled before this column existed, or
-- never forwarded. Finance groups margin by it over the finished_at range (tasks_by_finished).
ALTER TABLE tasks ADD COLUMN upstream_id TEXT;
