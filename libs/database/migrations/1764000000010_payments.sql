-- Up Migration

-- The payments read model, written only by the token_accounts projection. Columns follow the classic
-- payments table; package_id, expires_at and the event traceability columns are additions.
CREATE TABLE payments (
  id uuid PRIMARY KEY,
  user_id uuid NOT NULL,
  status text NOT NULL,
  package_id text NOT NULL,
  tokens_purchased bigint NOT NULL CHECK (tokens_purchased > 0),
  amount bigint NOT NULL CHECK (amount > 0),
  currency text NOT NULL,
  provider text NOT NULL,
  order_id text NOT NULL,
  provider_transaction_id text,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  last_event_id uuid NOT NULL,
  last_event_revision bigint NOT NULL,
  CONSTRAINT valid_payment_status CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED', 'REFUNDED'))
);

CREATE INDEX idx_payments_user_created_at ON payments (user_id, created_at DESC);
CREATE INDEX idx_payments_pending_expiry ON payments (expires_at) WHERE status = 'PENDING';
CREATE INDEX idx_payments_order_id ON payments (order_id);

-- Which user's stream holds a payment, written BEFORE the payment's first event is appended, so a
-- payment id can always be resolved to its stream even while the read model lags. A row whose
-- append never happened (a crash in between) points at a stream without that payment: "not found".
CREATE TABLE payment_streams (
  payment_id uuid PRIMARY KEY,
  user_id uuid NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Idempotency-Key: the first response to a (caller scope, key), replayed for a repeat with the same
-- request; `request_hash` is SHA-256 of method, path and body. A row is 'in_progress' while its
-- first request runs (`locked_until` lets a crashed request's key be taken over) and is kept until
-- `expires_at` (at least 24 hours), then purged.
CREATE TABLE idempotency_keys (
  scope text NOT NULL,
  key text NOT NULL,
  request_hash text NOT NULL,
  state text NOT NULL CHECK (state IN ('in_progress', 'completed')),
  response_status integer,
  response_content_type text,
  response_body text,
  created_at timestamptz NOT NULL DEFAULT now(),
  locked_until timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (scope, key)
);

CREATE INDEX idx_idempotency_keys_expires_at ON idempotency_keys (expires_at);

-- Down Migration
DROP TABLE idempotency_keys;
DROP TABLE payment_streams;
DROP TABLE payments;
