-- Up Migration

-- An Idempotency-Key belongs to the credential that sent it (`api_key:<id>`), so a retry sent with a
-- rotated key was a new request: done again. A key made to replace another (`replaces`) shares that
-- key's Idempotency-Keys: `idempotency_scope` is the id of the first key of the chain, NULL for a key
-- that replaces none (its own id).
ALTER TABLE api_keys ADD COLUMN idempotency_scope text CHECK (idempotency_scope IS NULL OR idempotency_scope ~ '^[0-9a-f]{24}$');

-- Down Migration
ALTER TABLE api_keys DROP COLUMN idempotency_scope;
