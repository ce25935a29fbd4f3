-- Up Migration

-- token_accounts' inline function joins one transaction's events (a group commit: a few to 1,000)
-- to the rows they change. The planner cannot know that few (`transaction_id = pg_current_xact_id()`
-- is estimated from the column's statistics, each `jsonb_array_elements` at 100 rows), so its cached
-- plans hashed the whole of token_lots, payments and user_tokens once per batch: 0.7 ms a batch at
-- 1,000 lots, growing with the table. Without hash and merge joins each join is a nested loop on
-- the written table's key. INLINE_FUNCTION_SETTINGS (libs/projections/src/inline-projections.ts)
-- states the same settings; inline-projections.spec.ts fails if the function lacks them, so a later
-- migration that replaces the function must repeat them.
ALTER FUNCTION token_accounts_apply_inline() SET enable_hashjoin = off;
ALTER FUNCTION token_accounts_apply_inline() SET enable_mergejoin = off;

-- Down Migration
ALTER FUNCTION token_accounts_apply_inline() RESET enable_mergejoin;
ALTER FUNCTION token_accounts_apply_inline() RESET enable_hashjoin;
