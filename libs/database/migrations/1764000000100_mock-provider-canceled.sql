-- Up Migration

-- The port gained `cancel` (our expiry makes sure the provider never captures the order, ADR 0020):
-- the mock provider's orders can be 'canceled'.
ALTER TABLE mock_provider_orders DROP CONSTRAINT mock_provider_orders_status_check;
ALTER TABLE mock_provider_orders ADD CONSTRAINT mock_provider_orders_status_check CHECK (status IN ('created', 'captured', 'declined', 'canceled', 'refunded'));

-- Down Migration

UPDATE mock_provider_orders SET status = 'declined' WHERE status = 'canceled';
ALTER TABLE mock_provider_orders DROP CONSTRAINT mock_provider_orders_status_check;
ALTER TABLE mock_provider_orders ADD CONSTRAINT mock_provider_orders_status_check CHECK (status IN ('created', 'captured', 'declined', 'refunded'));
