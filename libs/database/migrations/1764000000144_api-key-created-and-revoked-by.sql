-- Up Migration

-- Who created and who revoked each API key, found missing by a review of the admin surface: after a
-- leak, an operator must find the keys the leaked one created (a key may create keys) and know who
-- revoked what. `kind:subject` of the caller (`jwt:<sub>`, `api_key:<key id>`), or `cli` for the
-- admin CLI (the database's own credentials); NULL for keys made before this migration.
ALTER TABLE api_keys ADD COLUMN created_by text, ADD COLUMN revoked_by text;

-- Down Migration
ALTER TABLE api_keys DROP COLUMN revoked_by, DROP COLUMN created_by;
