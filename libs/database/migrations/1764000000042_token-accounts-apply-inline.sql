-- Up Migration

-- token_accounts' inline application as a function, so each session plans its statements once and
-- keeps the plans (EXECUTE of the same text plans it on every call: about a third of the rows' cost
-- in PostgreSQL). The body is exactly InlineProjections.statements(CURRENT_TRANSACTION) for
-- token_accounts; libs/projections/src/inline-projections.spec.ts fails if the two differ, so a
-- change to the projection's SQL needs a migration that replaces this function.
CREATE FUNCTION token_accounts_apply_inline() RETURNS void
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

-- Down Migration
DROP FUNCTION token_accounts_apply_inline();
