-- Up Migration

-- token_accounts' inline function keeps its plans for the life of a connection, made with the
-- statistics of the moment. Statistics taken while a table was empty (a rebuild's ANALYZE of a table
-- no account has used yet, a new deployment's tables) made sequential scans the cheapest plan, and
-- the plan stayed while the table filled: every settle then read all of token_holds (measured by
-- `npm run bench:http`, which analyzes before each timed phase: 4.5 ms of PostgreSQL per hold +
-- settle pair instead of 0.4). Every statement of the function finds its rows by key, so a
-- sequential scan is never the plan it needs. INLINE_FUNCTION_SETTINGS
-- (libs/projections/src/inline-projections.ts) states the same settings; inline-projections.spec.ts
-- fails if the function lacks them.
ALTER FUNCTION token_accounts_apply_inline() SET enable_seqscan = off;

-- Down Migration
ALTER FUNCTION token_accounts_apply_inline() RESET enable_seqscan;
