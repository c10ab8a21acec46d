-- Results on the reseller's own domain (issue 14). A tenant in `hosted` mode has every result
-- file of a successful task copied into R2 (ASSETS_BUCKET) and its task views carry signed
-- gateway URLs; `upstream` (the default) passes the upstream's URLs through as before.
ALTER TABLE tenants ADD COLUMN asset_mode TEXT NOT NULL DEFAULT 'upstream'
  CHECK (asset_mode IN ('upstream', 'hosted'));
-- How long a signed link handed out in a task view stays valid.
ALTER TABLE tenants ADD COLUMN asset_link_ttl_seconds INTEGER NOT NULL DEFAULT 604800
  CHECK (asset_link_ttl_seconds > 0);
-- Files are deleted by the cron this many days after they were copied.
ALTER TABLE tenants ADD COLUMN asset_retention_days INTEGER NOT NULL DEFAULT 30
  CHECK (asset_retention_days > 0);

-- One row per file stored in R2: what retention deletes and what usage sums (bytes per tenant).
CREATE TABLE asset_files (
  object_key  TEXT PRIMARY KEY,
  tenant_id   TEXT NOT NULL REFERENCES tenants(id),
  task_id     TEXT NOT NULL,
  bytes       INTEGER NOT NULL CHECK (bytes >= 0),
  stored_at   INTEGER NOT NULL
);
CREATE INDEX asset_files_by_tenant ON asset_files (tenant_id, stored_at);
CREATE INDEX asset_files_by_age ON asset_files (stored_at);
