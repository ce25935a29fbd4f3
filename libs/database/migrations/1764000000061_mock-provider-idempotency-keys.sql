-- Up Migration

-- The mock provider keeps the idempotency key of the capture and of the refund that changed an order,
-- as a real provider does, so tests can see that every retry of a money-moving call sent the same
-- key (derived from the payment id). Null for orders changed before this migration or by hand.
ALTER TABLE mock_provider_orders ADD COLUMN capture_idempotency_key text, ADD COLUMN refund_idempotency_key text;

-- Down Migration
ALTER TABLE mock_provider_orders DROP COLUMN refund_idempotency_key, DROP COLUMN capture_idempotency_key;
