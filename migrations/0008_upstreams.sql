-- The upstream pool: accounts the gateway submits to, managed by the operator (issue 13).
-- API keys are stored encrypted (AES-GCM under UPSTREAM_KEY_SECRET, the row id as associated
-- data: src/services/upstream-keys.ts); only the last four characters are kept in clear.
-- The row 'default' stands for the upstream of UPSTREAM_BASE_URL/UPSTREAM_API_KEY: its URL
-- and key are read from the environment, so its row holds only the settings the operator
-- may change (weight, priority, cap, actions, enabled) and can never hold credentials.
CREATE TABLE upstreams (
  id                  TEXT PRIMARY KEY,
  name                TEXT NOT NULL,
  base_url            TEXT,
  api_key_ciphertext  TEXT,
  api_key_iv          TEXT,
  key_hint            TEXT,
  weight              INTEGER NOT NULL DEFAULT 100
    CONSTRAINT upstream_weight_range CHECK (weight BETWEEN 1 AND 1000),
  priority            INTEGER NOT NULL DEFAULT 0,
  max_inflight        INTEGER NOT NULL DEFAULT 100
    CONSTRAINT upstream_max_inflight_positive CHECK (max_inflight >= 1),
  -- A JSON array of action names; NULL serves every action.
  actions             TEXT
    CONSTRAINT upstream_actions_json CHECK (actions IS NULL OR (json_valid(actions) AND json_type(actions) = 'array')),
  enabled             INTEGER NOT NULL DEFAULT 1,
  created_at          INTEGER NOT NULL,
  updated_at          INTEGER NOT NULL,
  disabled_at         INTEGER,
  CONSTRAINT upstream_credentials CHECK (
    CASE WHEN id = 'default'
      THEN base_url IS NULL AND api_key_ciphertext IS NULL AND api_key_iv IS NULL AND key_hint IS NULL
      ELSE base_url IS NOT NULL AND api_key_ciphertext IS NOT NULL AND api_key_iv IS NOT NULL AND key_hint IS NOT NULL
    END
  ),
  -- Disabled exactly when disabled_at says since when.
  CONSTRAINT upstream_disabled_at CHECK ((enabled = 1 AND disabled_at IS NULL) OR (enabled = 0 AND disabled_at IS NOT NULL))
);

INSERT INTO upstreams (id, name, created_at, updated_at)
VALUES ('default', 'default', CAST(strftime('%s', 'now') AS INTEGER) * 1000, CAST(strftime('%s', 'now') AS INTEGER) * 1000);
