-- Up Migration

-- Two index entries fewer per hold + settle pair, and an active-holds list that reads only active holds.
--
-- idx_token_holds_user_status (user_id, status, expires_at) took an entry for every hold at its
-- insert and another at its settle, release or expiry (the update changes `status`, so it is never a
-- HOT update), yet no query used it: the hold list walks idx_token_holds_user_revision in its keyset
-- order and the expiry job reads idx_token_holds_active_expiry. In its place, the list's keyset order
-- over active holds only: an entry at the insert, none at the end (the row no longer matches), and
-- `GET .../holds?status=active` on an account with years of ended holds reads its page and no more.
DROP INDEX idx_token_holds_user_status;
CREATE INDEX idx_token_holds_user_active ON token_holds (user_id, stream_revision) WHERE status = 'active';

-- No query looks a transaction up by its hold (a hold's usage is token_holds.transaction_id; a row's
-- hold is its own hold_id column), and every settle paid an entry here.
DROP INDEX idx_token_transactions_hold_id;

-- Down Migration
CREATE INDEX idx_token_transactions_hold_id ON token_transactions (hold_id) WHERE hold_id IS NOT NULL;
DROP INDEX idx_token_holds_user_active;
CREATE INDEX idx_token_holds_user_status ON token_holds (user_id, status, expires_at);
