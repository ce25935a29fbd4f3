-- Up Migration

-- Service API keys (`X-API-Key: tlk_<id>_<secret>`). Only the SHA-256 of the secret is stored: the
-- secret is 256 random bits, so a leaked hash cannot be reversed, and a fast hash keeps every
-- request's check cheap (a slow password hash such as bcrypt would cost ~100 ms of CPU per call and
-- protects nothing more, since there is no low-entropy password to guess). `id` is public (it
-- selects the row); the secret is what proves possession. Keys are for backends and operators, so
-- `user` is not a key role: a user acts through their identity provider's token.
CREATE TABLE api_keys (
  id text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{24}$'),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  role text NOT NULL CHECK (role IN ('service', 'auditor', 'admin')),
  hash bytea NOT NULL CHECK (length(hash) = 32),
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  last_used_at timestamptz
);

-- A name identifies one active key, so rotating is "create the new, revoke the old" and an operator
-- never has two live keys they cannot tell apart. A revoked key frees its name.
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;

-- Down Migration
DROP TABLE api_keys;
