-- Up Migration

-- The balance endpoint's `available` leaves out the tokens of refunds in progress, as every decision
-- does (ADR 0016): it sums the account's REFUND_PENDING payments. Few rows are ever in that state, so
-- a partial index finds them without reading the account's whole payment history.
CREATE INDEX idx_payments_refund_pending_user ON payments (user_id) WHERE status = 'REFUND_PENDING';

-- Down Migration
DROP INDEX idx_payments_refund_pending_user;
