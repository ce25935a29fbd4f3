-- Up Migration

-- The process whose request holds an in-progress Idempotency-Key: the name of a session advisory
-- lock that process holds for as long as it lives (see apps/api/src/http/idempotency/
-- idempotency-lease.ts and ADR 0016). When no session holds that lock any more the process is gone,
-- and a retry takes the key over at once instead of waiting for `locked_until`. NULL (a row claimed
-- by a process of an earlier version) falls back on `locked_until` alone.
ALTER TABLE idempotency_keys ADD COLUMN lease_owner text;

-- Down Migration
ALTER TABLE idempotency_keys DROP COLUMN lease_owner;
