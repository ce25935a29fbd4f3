-- Up Migration

-- The Location header of a stored response (a rebuild's 202 names where its progress is read), so a
-- replay under the same Idempotency-Key answers it too. NULL: the response had none.
ALTER TABLE idempotency_keys ADD COLUMN response_location text;

-- Down Migration
ALTER TABLE idempotency_keys DROP COLUMN response_location;
