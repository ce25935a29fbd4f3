-- Up Migration

-- A refund is recorded as asked for (PaymentRefundRequested) before the provider is called, and the
-- payment shows REFUND_PENDING until the provider's refund is recorded (ADR 0016). The status joins
-- the check, and token_accounts' inline function gets the new body: exactly
-- InlineProjections.statements(CURRENT_TRANSACTION), as libs/projections/src/inline-projections.spec.ts checks.
ALTER TABLE payments DROP CONSTRAINT valid_payment_status;
ALTER TABLE payments ADD CONSTRAINT valid_payment_status CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED', 'REFUND_PENDING', 'REFUNDED'));

-- What the reconciliation job pages through: PENDING payments, refunds asked for and not recorded, and recent
-- payments whose provider state may disagree (by id, the keyset).
CREATE INDEX idx_payments_unsettled ON payments (id) WHERE status IN ('PENDING', 'REFUND_PENDING');
CREATE INDEX idx_payments_updated_at ON payments (updated_at, id) WHERE status IN ('COMPLETED', 'FAILED');

CREATE OR REPLACE FUNCTION token_accounts_apply_inline() RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
LOCK TABLE user_tokens, token_transactions, payments, token_accounts_inline_commits IN ROW EXCLUSIVE MODE;
INSERT INTO token_transactions (id, user_id, amount, transaction_type, description, payment_id, balance_after, created_at, event_id, stream_revision)
     SELECT (data->>'transactionId')::uuid, (data->>'userId')::uuid,
            CASE WHEN event_type IN ('TokensPurchased', 'TokensAdjusted') THEN (data->>'amount')::bigint ELSE -(data->>'amount')::bigint END,
            CASE event_type WHEN 'TokensPurchased' THEN 'purchase' WHEN 'TokensUsed' THEN 'usage' WHEN 'TokensAdjusted' THEN 'adjustment' ELSE 'refund' END,
            CASE event_type WHEN 'TokensAdjusted' THEN data->>'reason' ELSE data->>'description' END,
            CASE WHEN event_type IN ('TokensPurchased', 'TokensRefunded') THEN (data->>'paymentId')::uuid END,
            (data->>'balanceAfter')::bigint, (data->>'occurredAt')::timestamptz, event_id, stream_revision
       FROM events WHERE events.event_type IN ('TokensPurchased', 'TokensUsed', 'TokensRefunded', 'TokensAdjusted') AND events.transaction_id = pg_current_xact_id();
INSERT INTO user_tokens (user_id, balance, transaction_count, created_at, updated_at, last_event_revision, last_event_position)
     SELECT user_id, balance_after, transaction_count, created_at, updated_at, stream_revision, transaction_id::text || '/' || global_position::text
       FROM (SELECT DISTINCT ON (user_id) user_id, balance_after, count(*) OVER whole AS transaction_count, first_value(occurred_at) OVER whole AS created_at,
                    occurred_at AS updated_at, stream_revision, transaction_id, global_position
               FROM (SELECT (data->>'userId')::uuid AS user_id, (data->>'balanceAfter')::bigint AS balance_after,
                            (data->>'occurredAt')::timestamptz AS occurred_at, stream_revision, transaction_id, global_position
                       FROM events WHERE events.event_type IN ('TokensPurchased', 'TokensUsed', 'TokensRefunded', 'TokensAdjusted') AND events.transaction_id = pg_current_xact_id()) AS account_events
             WINDOW whole AS (PARTITION BY user_id ORDER BY transaction_id, global_position ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
             ORDER BY user_id, transaction_id DESC, global_position DESC) AS last_events
      ORDER BY transaction_id, global_position
     ON CONFLICT (user_id) DO UPDATE SET
              balance = excluded.balance,
              transaction_count = user_tokens.transaction_count + excluded.transaction_count,
              updated_at = excluded.updated_at,
              last_event_revision = excluded.last_event_revision,
              last_event_position = excluded.last_event_position;
INSERT INTO payments (id, user_id, status, package_id, tokens_purchased, amount, currency, provider, order_id, metadata,
                               created_at, updated_at, expires_at, last_event_id, last_event_revision)
     SELECT (data->>'paymentId')::uuid, (data->>'userId')::uuid, 'PENDING', data->>'packageId', (data->>'tokens')::bigint, (data->>'amount')::bigint,
            data->>'currency', data->>'provider', data->>'orderId', '{}'::jsonb,
            (data->>'occurredAt')::timestamptz, (data->>'occurredAt')::timestamptz, (data->>'expiresAt')::timestamptz, event_id, stream_revision
       FROM events WHERE events.event_type = 'PaymentInitiated' AND events.transaction_id = pg_current_xact_id();
UPDATE payments SET
            status = last_event.status,
            provider_transaction_id = coalesce(captured.provider_transaction_id, payments.provider_transaction_id),
            metadata = last_event.metadata,
            updated_at = last_event.occurred_at,
            last_event_id = last_event.event_id,
            last_event_revision = last_event.stream_revision
       FROM (SELECT DISTINCT ON (payment_id) (data->>'paymentId')::uuid AS payment_id,
                    CASE event_type WHEN 'PaymentCaptured' THEN 'COMPLETED' WHEN 'PaymentRefundRequested' THEN 'REFUND_PENDING' WHEN 'PaymentRefunded' THEN 'REFUNDED' ELSE 'FAILED' END AS status,
                    CASE event_type
                      WHEN 'PaymentCaptured' THEN '{}'::jsonb
                      WHEN 'PaymentRefundRequested' THEN '{}'::jsonb
                      WHEN 'PaymentFailed' THEN jsonb_build_object('error', data->'reason')
                      WHEN 'PaymentExpired' THEN jsonb_build_object('error', 'Payment timed out'::text)
                      ELSE jsonb_build_object('providerRefundId', data->'providerRefundId', 'tokensDebited', data->'tokensDebited')
                    END AS metadata,
                    (data->>'occurredAt')::timestamptz AS occurred_at, event_id, stream_revision
               FROM events WHERE events.event_type IN ('PaymentCaptured', 'PaymentFailed', 'PaymentExpired', 'PaymentRefundRequested', 'PaymentRefunded') AND events.transaction_id = pg_current_xact_id()
              ORDER BY payment_id, transaction_id DESC, global_position DESC) AS last_event
       LEFT JOIN (SELECT DISTINCT ON (payment_id) (data->>'paymentId')::uuid AS payment_id, data->>'providerTransactionId' AS provider_transaction_id
                    FROM events WHERE events.event_type = 'PaymentCaptured' AND data->>'providerTransactionId' IS NOT NULL AND events.transaction_id = pg_current_xact_id()
                   ORDER BY payment_id, transaction_id DESC, global_position DESC) AS captured ON captured.payment_id = last_event.payment_id
      WHERE payments.id = last_event.payment_id;
INSERT INTO token_accounts_inline_commits (transaction_id) VALUES (pg_current_xact_id());
END;
$fn$;

-- Down Migration
DROP INDEX idx_payments_updated_at;
DROP INDEX idx_payments_unsettled;
CREATE OR REPLACE FUNCTION token_accounts_apply_inline() RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
LOCK TABLE user_tokens, token_transactions, payments, token_accounts_inline_commits IN ROW EXCLUSIVE MODE;
INSERT INTO token_transactions (id, user_id, amount, transaction_type, description, payment_id, balance_after, created_at, event_id, stream_revision)
     SELECT (data->>'transactionId')::uuid, (data->>'userId')::uuid,
            CASE WHEN event_type IN ('TokensPurchased', 'TokensAdjusted') THEN (data->>'amount')::bigint ELSE -(data->>'amount')::bigint END,
            CASE event_type WHEN 'TokensPurchased' THEN 'purchase' WHEN 'TokensUsed' THEN 'usage' WHEN 'TokensAdjusted' THEN 'adjustment' ELSE 'refund' END,
            CASE event_type WHEN 'TokensAdjusted' THEN data->>'reason' ELSE data->>'description' END,
            CASE WHEN event_type IN ('TokensPurchased', 'TokensRefunded') THEN (data->>'paymentId')::uuid END,
            (data->>'balanceAfter')::bigint, (data->>'occurredAt')::timestamptz, event_id, stream_revision
       FROM events WHERE events.event_type IN ('TokensPurchased', 'TokensUsed', 'TokensRefunded', 'TokensAdjusted') AND events.transaction_id = pg_current_xact_id();
INSERT INTO user_tokens (user_id, balance, transaction_count, created_at, updated_at, last_event_revision, last_event_position)
     SELECT user_id, balance_after, transaction_count, created_at, updated_at, stream_revision, transaction_id::text || '/' || global_position::text
       FROM (SELECT DISTINCT ON (user_id) user_id, balance_after, count(*) OVER whole AS transaction_count, first_value(occurred_at) OVER whole AS created_at,
                    occurred_at AS updated_at, stream_revision, transaction_id, global_position
               FROM (SELECT (data->>'userId')::uuid AS user_id, (data->>'balanceAfter')::bigint AS balance_after,
                            (data->>'occurredAt')::timestamptz AS occurred_at, stream_revision, transaction_id, global_position
                       FROM events WHERE events.event_type IN ('TokensPurchased', 'TokensUsed', 'TokensRefunded', 'TokensAdjusted') AND events.transaction_id = pg_current_xact_id()) AS account_events
             WINDOW whole AS (PARTITION BY user_id ORDER BY transaction_id, global_position ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
             ORDER BY user_id, transaction_id DESC, global_position DESC) AS last_events
      ORDER BY transaction_id, global_position
     ON CONFLICT (user_id) DO UPDATE SET
              balance = excluded.balance,
              transaction_count = user_tokens.transaction_count + excluded.transaction_count,
              updated_at = excluded.updated_at,
              last_event_revision = excluded.last_event_revision,
              last_event_position = excluded.last_event_position;
INSERT INTO payments (id, user_id, status, package_id, tokens_purchased, amount, currency, provider, order_id, metadata,
                               created_at, updated_at, expires_at, last_event_id, last_event_revision)
     SELECT (data->>'paymentId')::uuid, (data->>'userId')::uuid, 'PENDING', data->>'packageId', (data->>'tokens')::bigint, (data->>'amount')::bigint,
            data->>'currency', data->>'provider', data->>'orderId', '{}'::jsonb,
            (data->>'occurredAt')::timestamptz, (data->>'occurredAt')::timestamptz, (data->>'expiresAt')::timestamptz, event_id, stream_revision
       FROM events WHERE events.event_type = 'PaymentInitiated' AND events.transaction_id = pg_current_xact_id();
UPDATE payments SET
            status = last_event.status,
            provider_transaction_id = coalesce(captured.provider_transaction_id, payments.provider_transaction_id),
            metadata = last_event.metadata,
            updated_at = last_event.occurred_at,
            last_event_id = last_event.event_id,
            last_event_revision = last_event.stream_revision
       FROM (SELECT DISTINCT ON (payment_id) (data->>'paymentId')::uuid AS payment_id,
                    CASE event_type WHEN 'PaymentCaptured' THEN 'COMPLETED' WHEN 'PaymentRefunded' THEN 'REFUNDED' ELSE 'FAILED' END AS status,
                    CASE event_type
                      WHEN 'PaymentCaptured' THEN '{}'::jsonb
                      WHEN 'PaymentFailed' THEN jsonb_build_object('error', data->'reason')
                      WHEN 'PaymentExpired' THEN jsonb_build_object('error', 'Payment timed out'::text)
                      ELSE jsonb_build_object('providerRefundId', data->'providerRefundId', 'tokensDebited', data->'tokensDebited')
                    END AS metadata,
                    (data->>'occurredAt')::timestamptz AS occurred_at, event_id, stream_revision
               FROM events WHERE events.event_type IN ('PaymentCaptured', 'PaymentFailed', 'PaymentExpired', 'PaymentRefunded') AND events.transaction_id = pg_current_xact_id()
              ORDER BY payment_id, transaction_id DESC, global_position DESC) AS last_event
       LEFT JOIN (SELECT DISTINCT ON (payment_id) (data->>'paymentId')::uuid AS payment_id, data->>'providerTransactionId' AS provider_transaction_id
                    FROM events WHERE events.event_type = 'PaymentCaptured' AND data->>'providerTransactionId' IS NOT NULL AND events.transaction_id = pg_current_xact_id()
                   ORDER BY payment_id, transaction_id DESC, global_position DESC) AS captured ON captured.payment_id = last_event.payment_id
      WHERE payments.id = last_event.payment_id;
INSERT INTO token_accounts_inline_commits (transaction_id) VALUES (pg_current_xact_id());
END;
$fn$;
ALTER TABLE payments DROP CONSTRAINT valid_payment_status;
ALTER TABLE payments ADD CONSTRAINT valid_payment_status CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED', 'REFUNDED'));
