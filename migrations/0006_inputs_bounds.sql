-- Bounded reads: every ledger read has a time range (src/domain/ranges.ts); these make the
-- reads filtered by task or key index searches instead of walks of the whole ledger (the
-- partial UNIQUE index on (task_id, kind) is not used for a plain task_id filter).
CREATE INDEX ledger_by_task ON ledger(task_id);
CREATE INDEX ledger_by_key_time ON ledger(key_id, created_at);

-- Webhooks bounded: disabling an endpoint settles its pending deliveries (by endpoint), and
-- the hourly purge finds deliveries past WEBHOOK_RETENTION_DAYS by time.
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries(endpoint_id, status);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries(created_at);
