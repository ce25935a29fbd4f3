-- Up Migration

-- The MOCK payment provider's own books: its orders and what happened to them. A real provider keeps
-- these on its side; the mock keeps them here so that they outlive a restart of the service, as a real
-- provider's would (a payment captured at the provider before a crash is still captured after it).
-- Written only by MockPaymentProvider, each change in its own statement, never in a ledger
-- transaction: the ledger must learn of a capture the way it would from a real provider.
CREATE TABLE mock_provider_orders (
  order_id text PRIMARY KEY,
  payment_id uuid NOT NULL UNIQUE,
  amount bigint NOT NULL CHECK (amount > 0),
  currency text NOT NULL,
  description text NOT NULL,
  status text NOT NULL CHECK (status IN ('created', 'captured', 'declined', 'refunded')),
  -- How the mock answers the next capture of this order (demos and tests).
  behaviour text NOT NULL CHECK (behaviour IN ('approve', 'decline', 'timeout', 'error_after_capture')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE mock_provider_orders;
