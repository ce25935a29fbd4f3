-- Up Migration

-- What a key's first request was, beside `request_hash`, for the versions that read a retry as the
-- API reads it (a path UUID in either case, a top-level null as missing; docs/adr/0008, addendum):
-- {"fingerprint": its `v2:` fingerprint, "legacyHash": the `request_hash` it was written with,
--  "requestId": the request id its events' ids derive from}.
-- `request_hash` keeps the fingerprint every version computes, so an older instance (a rolling
-- deploy, a rollback) still replays a byte-identical retry and derives the same request id. The
-- identity counts only while `request_hash` is still its `legacyHash`: an older version that claims
-- an expired key afresh for another request rewrites `request_hash` and leaves this column as it was.
ALTER TABLE idempotency_keys ADD COLUMN request_identity jsonb;

-- Down Migration
ALTER TABLE idempotency_keys DROP COLUMN request_identity;
