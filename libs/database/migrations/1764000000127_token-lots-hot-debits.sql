-- Up Migration

-- Every debit (a usage, a settle) updates its lots' `remaining`. idx_token_lots_due's predicate named
-- `remaining`, and PostgreSQL makes an update HOT only when no column an index names (its predicate
-- included) changes: so each debit wrote a new version of the lot into the heap and into every index
-- of token_lots. The predicate now names `has_remaining`, kept by PostgreSQL as `remaining > 0`: it
-- changes once in a lot's life (when the lot is emptied), so a debit is a HOT update. Measured by
-- `npm run bench:versus -- --baseline a2ad328 --statements`: the lots' update went from 52.3 µs and
-- 3.89 WAL records per spend to 34.8 µs and 1.71 (ADR 0002). STORED: PostgreSQL 18's
-- default for a generated column is virtual, which an index cannot name. Adding it rewrites
-- token_lots once.
ALTER TABLE token_lots ADD COLUMN has_remaining boolean GENERATED ALWAYS AS (remaining > 0) STORED;
DROP INDEX idx_token_lots_due;
CREATE INDEX idx_token_lots_due ON token_lots (expires_at) WHERE has_remaining AND expires_at IS NOT NULL;

-- Down Migration
DROP INDEX idx_token_lots_due;
CREATE INDEX idx_token_lots_due ON token_lots (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;
ALTER TABLE token_lots DROP COLUMN has_remaining;
