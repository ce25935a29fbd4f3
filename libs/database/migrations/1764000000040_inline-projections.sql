-- Up Migration

-- Inline projections: a command's events and the read-model rows they produce commit in one
-- transaction (the append's). The catch-up runner still walks `$all` behind them, for events written
-- without the inline projection (another store, a process without it, a rebuild's catch-up); it
-- must not apply the inline ones again. Each transaction that applied token_accounts inline records
-- its id here, in that same transaction, so "this event is in the read models" is exactly: at or
-- before the checkpoint, or of a transaction listed here. The runner deletes the ids it has passed.
--
-- The table is one of the projection's tables: a rebuild builds an empty twin with the shadow
-- tables and swaps it in with them, so ids recorded against the retired tables do not make the
-- runner skip those events in the new ones.
CREATE TABLE token_accounts_inline_commits (
  transaction_id xid8 PRIMARY KEY
);

-- Down Migration
DROP TABLE token_accounts_inline_commits;
