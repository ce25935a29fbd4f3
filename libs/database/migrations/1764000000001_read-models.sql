-- Up Migration

-- Read models, written only by projections. Names and columns follow the classic token system;
-- amounts are bigint because the ledger accepts any safe integer.
CREATE TABLE user_tokens (
  user_id uuid PRIMARY KEY,
  balance bigint NOT NULL CHECK (balance >= 0),
  transaction_count bigint NOT NULL DEFAULT 0 CHECK (transaction_count >= 0),
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  last_event_revision bigint NOT NULL,
  last_event_position text NOT NULL
);

CREATE TABLE token_transactions (
  id uuid PRIMARY KEY,
  user_id uuid NOT NULL,
  amount bigint NOT NULL CHECK (amount <> 0),
  transaction_type text NOT NULL,
  description text,
  payment_id uuid,
  balance_after bigint NOT NULL CHECK (balance_after >= 0),
  created_at timestamptz NOT NULL,
  event_id uuid NOT NULL,
  stream_revision bigint NOT NULL,
  CONSTRAINT valid_transaction_type CHECK (transaction_type IN ('purchase', 'usage', 'refund', 'adjustment')),
  CONSTRAINT token_transactions_event_id_unique UNIQUE (event_id),
  CONSTRAINT token_transactions_user_revision_unique UNIQUE (user_id, stream_revision)
);

CREATE INDEX idx_token_transactions_payment_id ON token_transactions (payment_id) WHERE payment_id IS NOT NULL;
CREATE INDEX idx_token_transactions_user_created_at ON token_transactions (user_id, created_at DESC);

-- Where each projection has got to in $all. Positions are unsigned 64-bit pairs (PostgreSQL:
-- transaction id and global position; EventStoreDB: commit and prepare), kept losslessly as numeric.
CREATE TABLE projection_checkpoints (
  name text PRIMARY KEY,
  commit_position numeric(20, 0) NOT NULL,
  prepare_position numeric(20, 0) NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE projection_checkpoints;
DROP TABLE token_transactions;
DROP TABLE user_tokens;
