-- Up Migration

-- Cursor paging of the lists (ADR 0026): each list's keyset order is served by an index, so a page
-- after a cursor reads only its own rows. The history's order, (user_id, stream_revision), already has
-- its unique constraint.

-- Holds, newest first: the revision of each hold's TokensHeld.
CREATE INDEX idx_token_holds_user_revision ON token_holds (user_id, stream_revision);

-- Lots in draw-down order: priority, expiry (none last), creation, id. `expires_at NULLS LAST` is
-- written as coalesce(expires_at, 'infinity') so that one row comparison states the cursor.
CREATE INDEX idx_token_lots_draw_order ON token_lots (user_id, priority, (coalesce(expires_at, 'infinity'::timestamptz)), created_at, lot_id);

-- Payments, newest first, with the id to break ties in creation time.
DROP INDEX idx_payments_user_created_at;
CREATE INDEX idx_payments_user_created_at_id ON payments (user_id, created_at DESC, id DESC);

-- Down Migration
DROP INDEX idx_payments_user_created_at_id;
CREATE INDEX idx_payments_user_created_at ON payments (user_id, created_at DESC);
DROP INDEX idx_token_lots_draw_order;
DROP INDEX idx_token_holds_user_revision;
