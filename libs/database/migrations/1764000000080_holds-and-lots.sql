-- Up Migration

-- Holds and credit lots (issue 15), written only by the token_accounts projection. `held` is what
-- active holds set aside (the last event's heldAfter); `available` is derived, never written.
ALTER TABLE user_tokens
  ADD COLUMN held bigint NOT NULL DEFAULT 0,
  ADD COLUMN available bigint GENERATED ALWAYS AS (balance - held) STORED,
  ADD CONSTRAINT user_tokens_held_within_balance CHECK (held >= 0 AND held <= balance);

-- History rows link to what they came from: the hold a usage settled, the lot a credit created, the
-- lots a debit drew from (`draws`: [{lotId, amount}]). A lot's remainder gone at its expiry is an
-- `expiry` row.
ALTER TABLE token_transactions
  ADD COLUMN hold_id uuid,
  ADD COLUMN lot_id text,
  ADD COLUMN draws jsonb,
  DROP CONSTRAINT valid_transaction_type,
  ADD CONSTRAINT valid_transaction_type CHECK (transaction_type IN ('purchase', 'usage', 'refund', 'adjustment', 'expiry'));

CREATE INDEX idx_token_transactions_hold_id ON token_transactions (hold_id) WHERE hold_id IS NOT NULL;

-- Every hold: active until settled, released or expired. `draws` are the lots' tokens it set aside;
-- `transaction_id` is the usage row of its settle.
CREATE TABLE token_holds (
  hold_id uuid PRIMARY KEY,
  user_id uuid NOT NULL,
  amount bigint NOT NULL CHECK (amount > 0),
  description text,
  status text NOT NULL,
  expires_at timestamptz NOT NULL,
  draws jsonb NOT NULL,
  settled_amount bigint,
  transaction_id uuid,
  created_at timestamptz NOT NULL,
  ended_at timestamptz,
  event_id uuid NOT NULL,
  stream_revision bigint NOT NULL,
  CONSTRAINT valid_hold_status CHECK (status IN ('active', 'settled', 'released', 'expired'))
);

CREATE INDEX idx_token_holds_user_status ON token_holds (user_id, status, expires_at);
CREATE INDEX idx_token_holds_active_expiry ON token_holds (expires_at) WHERE status = 'active';

-- Every credit lot. `lot_id` is the crediting transaction's id, or 'opening' for the credits of a
-- stream written before lots. `status`: active, spent (nothing left), expired, voided (a grant taken
-- back) or refunded (its purchase refunded).
CREATE TABLE token_lots (
  user_id uuid NOT NULL,
  lot_id text NOT NULL,
  source text NOT NULL,
  payment_id uuid,
  transaction_id uuid,
  original bigint NOT NULL CHECK (original > 0),
  remaining bigint NOT NULL CHECK (remaining >= 0 AND remaining <= original),
  priority integer NOT NULL,
  expires_at timestamptz,
  status text NOT NULL,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (user_id, lot_id),
  CONSTRAINT valid_lot_source CHECK (source IN ('purchase', 'grant', 'adjustment', 'opening')),
  CONSTRAINT valid_lot_status CHECK (status IN ('active', 'spent', 'expired', 'voided', 'refunded'))
);

CREATE INDEX idx_token_lots_due ON token_lots (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;

-- Down Migration
DROP TABLE token_lots;
DROP TABLE token_holds;
DROP INDEX idx_token_transactions_hold_id;
ALTER TABLE token_transactions
  DROP CONSTRAINT valid_transaction_type,
  ADD CONSTRAINT valid_transaction_type CHECK (transaction_type IN ('purchase', 'usage', 'refund', 'adjustment')),
  DROP COLUMN draws,
  DROP COLUMN lot_id,
  DROP COLUMN hold_id;
ALTER TABLE user_tokens DROP CONSTRAINT user_tokens_held_within_balance, DROP COLUMN available, DROP COLUMN held;
