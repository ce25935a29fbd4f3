-- Up Migration

-- API keys get scopes and an optional expiry. `scopes` narrows what the key's role allows (each action
-- needs one scope: ACTION_SCOPES in libs/auth/src/permissions.ts); NULL means "the scopes of its role",
-- which is what every key made before this migration had, so those keep working unchanged. Keys made
-- from now on always list their scopes. A key past `expires_at` is refused like a revoked one (401).
ALTER TABLE api_keys
  ADD COLUMN scopes text[] CHECK (scopes IS NULL OR (cardinality(scopes) BETWEEN 1 AND 32 AND array_position(scopes, NULL) IS NULL)),
  ADD COLUMN expires_at timestamptz CHECK (expires_at IS NULL OR expires_at > created_at);

-- Down Migration
ALTER TABLE api_keys DROP COLUMN expires_at, DROP COLUMN scopes;
