-- Up Migration

-- The balance's next expiry (GET /v1/accounts/{userId}/balance, the busiest read) found the account's
-- lots by user_id alone, then filtered and sorted them: every lot the account ever had, as token_lots
-- keeps spent and expired lots (found by a review of the read models, 6 December). This index holds
-- only the lots with tokens left and an expiry, in the order the query reads them, so it reads the
-- first such lot of the account and stops. A debit that leaves tokens in a lot changes no column of
-- it (`has_remaining` stays true), so debits stay HOT updates as migration 127 made them; only a
-- credit, and the debit that empties a lot, touch it.
CREATE INDEX idx_token_lots_next_expiry ON token_lots (user_id, expires_at, lot_id) WHERE has_remaining AND expires_at IS NOT NULL;

-- Down Migration
DROP INDEX idx_token_lots_next_expiry;
