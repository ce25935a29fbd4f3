-- Up Migration

-- Provider notifications already processed, by the provider's event id: a replay of a signed
-- delivery (or the provider's retry of one we answered) is answered 2xx without effect. Rows are kept
-- 24 hours; a replay older than the signature tolerance (at most 1 hour) is refused by its timestamp.
CREATE TABLE payment_webhook_deliveries (
  provider text NOT NULL,
  event_id text NOT NULL,
  payment_id uuid NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (provider, event_id)
);

CREATE INDEX idx_payment_webhook_deliveries_processed_at ON payment_webhook_deliveries (processed_at);

-- Down Migration
DROP TABLE payment_webhook_deliveries;
