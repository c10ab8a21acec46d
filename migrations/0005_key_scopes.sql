-- Key scopes: which groups of tenant routes a sub-key may call (see src/domain/scopes.ts).
-- A JSON array of scope names; NULL means every scope (keys issued before scopes existed keep
-- working exactly as before). `allowed_actions` still narrows the 'generate' scope.
ALTER TABLE api_keys ADD COLUMN scopes TEXT
  CONSTRAINT key_scopes_json CHECK (scopes IS NULL OR (json_valid(scopes) AND json_type(scopes) = 'array'));
