-- Up Migration

-- `GET /v1/accounts/{userId}/lots?status=active` read the account's lots in draw-down order through
-- idx_token_lots_draw_order and filtered them, so it walked every spent or expired lot sorting ahead
-- of the live ones (a year of spent daily grants at priority 10 before a live purchase at 100; found
-- by a review of the read models, 6 December). An active lot always has tokens left, so the query
-- for active lots also says `has_remaining`, which this index, the same tuple over those lots only,
-- serves. Debits that leave tokens in a lot change no column it names (`has_remaining` stays true),
-- so they stay HOT updates; a credit, and the debit that empties a lot, touch it.
CREATE INDEX idx_token_lots_live_draw_order ON token_lots (user_id, priority, (coalesce(expires_at, 'infinity'::timestamptz)), stream_revision, lot_id) WHERE has_remaining;

-- Down Migration
DROP INDEX idx_token_lots_live_draw_order;
