-- Up Migration

-- The set-based statements agree with the event-by-event projection on two columns of token_lots
-- (found by a review of the read models, 6 December): an opening lot's created_at is its first
-- credit's in the stream (was: the earliest occurredAt of its credits, which a writer's clock behind
-- another's makes a later credit's), and a lot emptied at or after its expiry is judged by the time
-- of the debit that emptied it, the batch's last of that lot (was: the latest time among the batch's
-- debits of it, which a command decided again after a conflict, keeping an earlier time, could make
-- another's). token_accounts' inline function as migration 142 left it with those two changes. The
-- body is exactly InlineProjections.statements(CURRENT_TRANSACTION) for token_accounts
-- (libs/projections/src/inline-projections.spec.ts fails if the two differ). CREATE OR REPLACE
-- resets a function's settings, so it states those of migrations 124 and 125
-- (INLINE_FUNCTION_SETTINGS) again. Rows written before keep their values; a rebuild (or one
-- account's) writes them by the same rule.
CREATE OR REPLACE FUNCTION token_accounts_apply_inline() RETURNS void
LANGUAGE plpgsql
SET enable_hashjoin = off SET enable_mergejoin = off SET enable_seqscan = off
AS $fn$
BEGIN
LOCK TABLE user_tokens, token_transactions, payments, token_holds, token_lots, token_accounts_inline_commits IN ROW EXCLUSIVE MODE;
INSERT INTO token_transactions (id, user_id, amount, transaction_type, description, payment_id, balance_after, created_at, event_id, stream_revision,
                                  hold_id, lot_id, draws, metadata)
     SELECT (data->>'transactionId')::uuid, (data->>'userId')::uuid,
            CASE WHEN event_type IN ('TokensPurchased', 'TokensAdjusted', 'TokensGranted') THEN (data->>'amount')::bigint
                 WHEN event_type = 'HoldSettled' THEN -(data->>'settledAmount')::bigint ELSE -(data->>'amount')::bigint END,
            CASE event_type WHEN 'TokensPurchased' THEN 'purchase' WHEN 'TokensUsed' THEN 'usage' WHEN 'HoldSettled' THEN 'usage' WHEN 'TokensRefunded' THEN 'refund'
                            WHEN 'LotExpired' THEN 'expiry' WHEN 'TokensChargedBack' THEN 'chargeback' WHEN 'ShortfallCovered' THEN 'chargeback' ELSE 'adjustment' END,
            CASE WHEN event_type IN ('TokensAdjusted', 'TokensGranted', 'GrantVoided') THEN data->>'reason'
                 WHEN event_type = 'LotExpired' THEN 'Credit lot ' || (data->>'lotId') || ' expired' ELSE data->>'description' END,
            CASE WHEN event_type IN ('TokensPurchased', 'TokensRefunded', 'TokensChargedBack') THEN (data->>'paymentId')::uuid END,
            (data->>'balanceAfter')::bigint, (data->>'occurredAt')::timestamptz, event_id, stream_revision,
            (data->>'holdId')::uuid, data->'lot'->>'lotId', data->'draws', CASE WHEN event_type IN ('TokensUsed', 'HoldSettled') THEN data->'metadata' END
       FROM events WHERE (events.event_type IN ('TokensPurchased', 'TokensUsed', 'TokensRefunded', 'TokensAdjusted', 'TokensGranted', 'GrantVoided', 'LotExpired',
                                             'TokensChargedBack', 'ShortfallCovered') OR (events.event_type = 'HoldSettled' AND events.data->'draws' IS NOT NULL)) AND events.transaction_id = pg_current_xact_id();
INSERT INTO user_tokens (user_id, balance, held, transaction_count, created_at, updated_at, last_event_revision, last_event_position)
     SELECT user_id, balance_after, held_after, transaction_count, created_at, updated_at, stream_revision, transaction_id::text || '/' || global_position::text
       FROM (SELECT DISTINCT ON (user_id) user_id, balance_after, held_after, count(*) FILTER (WHERE makes_row) OVER whole AS transaction_count,
                    first_value(occurred_at) OVER whole AS created_at, occurred_at AS updated_at, stream_revision, transaction_id, global_position
               FROM (SELECT (data->>'userId')::uuid AS user_id, (data->>'balanceAfter')::bigint AS balance_after,
                            coalesce((data->>'heldAfter')::bigint, 0) AS held_after, (events.event_type IN ('TokensPurchased', 'TokensUsed', 'TokensRefunded', 'TokensAdjusted', 'TokensGranted', 'GrantVoided', 'LotExpired',
                                             'TokensChargedBack', 'ShortfallCovered') OR (events.event_type = 'HoldSettled' AND events.data->'draws' IS NOT NULL)) AS makes_row,
                            (data->>'occurredAt')::timestamptz AS occurred_at, stream_revision, transaction_id, global_position
                       FROM events WHERE events.event_type IN ('TokensPurchased', 'TokensUsed', 'TokensRefunded', 'TokensAdjusted', 'TokensGranted', 'GrantVoided', 'LotExpired',
                                              'TokensChargedBack', 'ShortfallCovered', 'TokensHeld', 'HoldSettled', 'HoldReleased', 'HoldExpired') AND events.transaction_id = pg_current_xact_id()) AS account_events
             WINDOW whole AS (PARTITION BY user_id ORDER BY transaction_id, global_position ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
             ORDER BY user_id, transaction_id DESC, global_position DESC) AS last_events
      ORDER BY transaction_id, global_position
     ON CONFLICT (user_id) DO UPDATE SET
              balance = excluded.balance,
              held = excluded.held,
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
                    CASE event_type WHEN 'PaymentCaptured' THEN 'COMPLETED' WHEN 'PaymentRefundRequested' THEN 'REFUND_PENDING' WHEN 'PaymentRefundFailed' THEN 'COMPLETED'
                                    WHEN 'PaymentRefunded' THEN 'REFUNDED' ELSE 'FAILED' END AS status,
                    CASE event_type
                      WHEN 'PaymentCaptured' THEN '{}'::jsonb
                      WHEN 'PaymentRefundRequested' THEN '{}'::jsonb
                      WHEN 'PaymentRefundFailed' THEN jsonb_build_object('refundError', data->'reason')
                      WHEN 'PaymentFailed' THEN jsonb_build_object('error', data->'reason')
                      WHEN 'PaymentExpired' THEN jsonb_build_object('error', 'Payment timed out'::text)
                      ELSE jsonb_build_object('providerRefundId', data->'providerRefundId', 'tokensDebited', data->'tokensDebited')
                    END AS metadata,
                    (data->>'occurredAt')::timestamptz AS occurred_at, event_id, stream_revision
               FROM events WHERE events.event_type IN ('PaymentCaptured', 'PaymentFailed', 'PaymentExpired', 'PaymentRefundRequested', 'PaymentRefundFailed', 'PaymentRefunded') AND events.transaction_id = pg_current_xact_id()
              ORDER BY payment_id, transaction_id DESC, global_position DESC) AS last_event
       LEFT JOIN (SELECT DISTINCT ON (payment_id) (data->>'paymentId')::uuid AS payment_id, data->>'providerTransactionId' AS provider_transaction_id
                    FROM events WHERE events.event_type = 'PaymentCaptured' AND data->>'providerTransactionId' IS NOT NULL AND events.transaction_id = pg_current_xact_id()
                   ORDER BY payment_id, transaction_id DESC, global_position DESC) AS captured ON captured.payment_id = last_event.payment_id
      WHERE payments.id = last_event.payment_id;
UPDATE payments SET metadata = jsonb_set(payments.metadata, '{tokensDebited}', to_jsonb(coalesce((payments.metadata->>'tokensDebited')::bigint, 0) + taken.amount))
       FROM (SELECT (data->>'paymentId')::uuid AS payment_id, sum((data->>'amount')::bigint) AS amount
               FROM events WHERE events.event_type = 'TokensRefunded' AND data->>'heldAtRefund' = 'true' AND events.transaction_id = pg_current_xact_id()
              GROUP BY payment_id) AS taken
      WHERE payments.id = taken.payment_id;
INSERT INTO token_holds (hold_id, user_id, amount, description, status, expires_at, draws, created_at, event_id, stream_revision, metadata)
     SELECT (data->>'holdId')::uuid, (data->>'userId')::uuid, (data->>'amount')::bigint, data->>'description', 'active',
            (data->>'expiresAt')::timestamptz, data->'draws', (data->>'occurredAt')::timestamptz, event_id, stream_revision, data->'metadata'
       FROM events WHERE events.event_type = 'TokensHeld' AND events.transaction_id = pg_current_xact_id();
UPDATE token_holds SET
            status = ended.status, settled_amount = ended.settled_amount, transaction_id = ended.transaction_id, ended_at = ended.ended_at
       FROM (SELECT (data->>'holdId')::uuid AS hold_id,
                    CASE event_type WHEN 'HoldSettled' THEN 'settled' WHEN 'HoldReleased' THEN 'released' ELSE 'expired' END AS status,
                    (data->>'settledAmount')::bigint AS settled_amount, (data->>'transactionId')::uuid AS transaction_id,
                    (CASE event_type WHEN 'HoldExpired' THEN data->>'expiresAt' ELSE data->>'occurredAt' END)::timestamptz AS ended_at
               FROM events WHERE events.event_type IN ('HoldSettled', 'HoldReleased', 'HoldExpired') AND events.transaction_id = pg_current_xact_id()) AS ended
      WHERE token_holds.hold_id = ended.hold_id;
INSERT INTO token_lots (user_id, lot_id, source, payment_id, transaction_id, original, remaining, priority, expires_at, status, created_at, stream_revision)
     SELECT user_id, lot_id, source, payment_id, transaction_id, sum(amount), sum(amount), priority, expires_at, 'active', (array_agg(created_at ORDER BY stream_revision))[1], min(stream_revision)
       FROM (SELECT (data->>'userId')::uuid AS user_id, coalesce(data->'lot'->>'lotId', 'opening') AS lot_id,
                    CASE WHEN data->'lot' IS NULL THEN 'opening' WHEN event_type = 'TokensPurchased' THEN 'purchase'
                         WHEN event_type = 'TokensGranted' THEN 'grant' ELSE 'adjustment' END AS source,
                    CASE WHEN data->'lot' IS NOT NULL AND event_type = 'TokensPurchased' THEN (data->>'paymentId')::uuid END AS payment_id,
                    CASE WHEN data->'lot' IS NOT NULL THEN (data->>'transactionId')::uuid END AS transaction_id,
                    (data->>'amount')::bigint AS amount, coalesce((data->'lot'->>'priority')::integer, 100) AS priority,
                    (data->'lot'->>'expiresAt')::timestamptz AS expires_at, (data->>'occurredAt')::timestamptz AS created_at, stream_revision
               FROM events WHERE (events.event_type IN ('TokensPurchased', 'TokensGranted') OR (events.event_type = 'TokensAdjusted' AND (data->>'amount')::bigint > 0)) AND events.transaction_id = pg_current_xact_id()) AS credits
      GROUP BY user_id, lot_id, source, payment_id, transaction_id, priority, expires_at
     ON CONFLICT (user_id, lot_id) DO UPDATE SET
              original = token_lots.original + excluded.original,
              remaining = token_lots.remaining + excluded.remaining,
              status = 'active';
UPDATE token_lots SET
            remaining = token_lots.remaining - drawn.amount,
            status = CASE WHEN drawn.closing IS NOT NULL AND (drawn.closing <> 'refunded' OR token_lots.source = 'purchase') THEN drawn.closing
                          WHEN token_lots.status IN ('expired', 'voided', 'refunded') THEN token_lots.status
                          WHEN token_lots.remaining - drawn.amount = 0 THEN CASE WHEN token_lots.expires_at <= drawn.occurred_at THEN 'expired' ELSE 'spent' END
                          ELSE 'active' END
       FROM (SELECT user_id, lot_id, sum(amount) AS amount, (array_agg(occurred_at ORDER BY transaction_id DESC, global_position DESC))[1] AS occurred_at,
                    (array_agg(closing ORDER BY transaction_id DESC, global_position DESC) FILTER (WHERE closing IS NOT NULL))[1] AS closing
               FROM (SELECT (data->>'userId')::uuid AS user_id, draw->>'lotId' AS lot_id, (draw->>'amount')::bigint AS amount,
                            CASE event_type WHEN 'LotExpired' THEN 'expired' WHEN 'GrantVoided' THEN 'voided' WHEN 'TokensRefunded' THEN 'refunded' END AS closing,
                            (data->>'occurredAt')::timestamptz AS occurred_at, transaction_id, global_position
                       FROM events CROSS JOIN LATERAL jsonb_array_elements(
                              coalesce(data->'draws', jsonb_build_array(jsonb_build_object('lotId', 'opening', 'amount', abs((data->>'amount')::bigint))))) AS draw
                      WHERE (events.event_type IN ('TokensUsed', 'TokensRefunded', 'GrantVoided', 'LotExpired', 'TokensChargedBack', 'ShortfallCovered') OR (events.event_type = 'TokensAdjusted' AND (data->>'amount')::bigint < 0)
                      OR (events.event_type = 'HoldSettled' AND events.data->'draws' IS NOT NULL)) AND events.transaction_id = pg_current_xact_id()) AS draws
              GROUP BY user_id, lot_id) AS drawn
      WHERE token_lots.user_id = drawn.user_id AND token_lots.lot_id = drawn.lot_id;
UPDATE payments SET dispute_id = last_event.dispute_id, dispute_status = last_event.dispute_status
       FROM (SELECT DISTINCT ON (payment_id) (data->>'paymentId')::uuid AS payment_id, data->>'disputeId' AS dispute_id,
                    CASE event_type WHEN 'PaymentDisputeOpened' THEN 'open' ELSE data->>'outcome' END AS dispute_status
               FROM events WHERE events.event_type IN ('PaymentDisputeOpened', 'PaymentDisputeClosed') AND events.transaction_id = pg_current_xact_id()
              ORDER BY payment_id, transaction_id DESC, global_position DESC) AS last_event
      WHERE payments.id = last_event.payment_id;
UPDATE user_tokens SET shortfall = last_event.shortfall
       FROM (SELECT DISTINCT ON (user_id) (data->>'userId')::uuid AS user_id, (data->>'shortfallAfter')::bigint AS shortfall
               FROM events WHERE events.event_type IN ('PaymentDisputeClosed', 'ShortfallCovered') AND events.transaction_id = pg_current_xact_id()
              ORDER BY user_id, transaction_id DESC, global_position DESC) AS last_event
      WHERE user_tokens.user_id = last_event.user_id;
INSERT INTO token_accounts_inline_commits (transaction_id) VALUES (pg_current_xact_id());
END;
$fn$;

-- Down Migration

-- The function as migration 142 left it.
CREATE OR REPLACE FUNCTION token_accounts_apply_inline() RETURNS void
LANGUAGE plpgsql
SET enable_hashjoin = off SET enable_mergejoin = off SET enable_seqscan = off
AS $fn$
BEGIN
LOCK TABLE user_tokens, token_transactions, payments, token_holds, token_lots, token_accounts_inline_commits IN ROW EXCLUSIVE MODE;
INSERT INTO token_transactions (id, user_id, amount, transaction_type, description, payment_id, balance_after, created_at, event_id, stream_revision,
                                  hold_id, lot_id, draws, metadata)
     SELECT (data->>'transactionId')::uuid, (data->>'userId')::uuid,
            CASE WHEN event_type IN ('TokensPurchased', 'TokensAdjusted', 'TokensGranted') THEN (data->>'amount')::bigint
                 WHEN event_type = 'HoldSettled' THEN -(data->>'settledAmount')::bigint ELSE -(data->>'amount')::bigint END,
            CASE event_type WHEN 'TokensPurchased' THEN 'purchase' WHEN 'TokensUsed' THEN 'usage' WHEN 'HoldSettled' THEN 'usage' WHEN 'TokensRefunded' THEN 'refund'
                            WHEN 'LotExpired' THEN 'expiry' WHEN 'TokensChargedBack' THEN 'chargeback' WHEN 'ShortfallCovered' THEN 'chargeback' ELSE 'adjustment' END,
            CASE WHEN event_type IN ('TokensAdjusted', 'TokensGranted', 'GrantVoided') THEN data->>'reason'
                 WHEN event_type = 'LotExpired' THEN 'Credit lot ' || (data->>'lotId') || ' expired' ELSE data->>'description' END,
            CASE WHEN event_type IN ('TokensPurchased', 'TokensRefunded', 'TokensChargedBack') THEN (data->>'paymentId')::uuid END,
            (data->>'balanceAfter')::bigint, (data->>'occurredAt')::timestamptz, event_id, stream_revision,
            (data->>'holdId')::uuid, data->'lot'->>'lotId', data->'draws', CASE WHEN event_type IN ('TokensUsed', 'HoldSettled') THEN data->'metadata' END
       FROM events WHERE (events.event_type IN ('TokensPurchased', 'TokensUsed', 'TokensRefunded', 'TokensAdjusted', 'TokensGranted', 'GrantVoided', 'LotExpired',
                                             'TokensChargedBack', 'ShortfallCovered') OR (events.event_type = 'HoldSettled' AND events.data->'draws' IS NOT NULL)) AND events.transaction_id = pg_current_xact_id();
INSERT INTO user_tokens (user_id, balance, held, transaction_count, created_at, updated_at, last_event_revision, last_event_position)
     SELECT user_id, balance_after, held_after, transaction_count, created_at, updated_at, stream_revision, transaction_id::text || '/' || global_position::text
       FROM (SELECT DISTINCT ON (user_id) user_id, balance_after, held_after, count(*) FILTER (WHERE makes_row) OVER whole AS transaction_count,
                    first_value(occurred_at) OVER whole AS created_at, occurred_at AS updated_at, stream_revision, transaction_id, global_position
               FROM (SELECT (data->>'userId')::uuid AS user_id, (data->>'balanceAfter')::bigint AS balance_after,
                            coalesce((data->>'heldAfter')::bigint, 0) AS held_after, (events.event_type IN ('TokensPurchased', 'TokensUsed', 'TokensRefunded', 'TokensAdjusted', 'TokensGranted', 'GrantVoided', 'LotExpired',
                                             'TokensChargedBack', 'ShortfallCovered') OR (events.event_type = 'HoldSettled' AND events.data->'draws' IS NOT NULL)) AS makes_row,
                            (data->>'occurredAt')::timestamptz AS occurred_at, stream_revision, transaction_id, global_position
                       FROM events WHERE events.event_type IN ('TokensPurchased', 'TokensUsed', 'TokensRefunded', 'TokensAdjusted', 'TokensGranted', 'GrantVoided', 'LotExpired',
                                              'TokensChargedBack', 'ShortfallCovered', 'TokensHeld', 'HoldSettled', 'HoldReleased', 'HoldExpired') AND events.transaction_id = pg_current_xact_id()) AS account_events
             WINDOW whole AS (PARTITION BY user_id ORDER BY transaction_id, global_position ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
             ORDER BY user_id, transaction_id DESC, global_position DESC) AS last_events
      ORDER BY transaction_id, global_position
     ON CONFLICT (user_id) DO UPDATE SET
              balance = excluded.balance,
              held = excluded.held,
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
                    CASE event_type WHEN 'PaymentCaptured' THEN 'COMPLETED' WHEN 'PaymentRefundRequested' THEN 'REFUND_PENDING' WHEN 'PaymentRefundFailed' THEN 'COMPLETED'
                                    WHEN 'PaymentRefunded' THEN 'REFUNDED' ELSE 'FAILED' END AS status,
                    CASE event_type
                      WHEN 'PaymentCaptured' THEN '{}'::jsonb
                      WHEN 'PaymentRefundRequested' THEN '{}'::jsonb
                      WHEN 'PaymentRefundFailed' THEN jsonb_build_object('refundError', data->'reason')
                      WHEN 'PaymentFailed' THEN jsonb_build_object('error', data->'reason')
                      WHEN 'PaymentExpired' THEN jsonb_build_object('error', 'Payment timed out'::text)
                      ELSE jsonb_build_object('providerRefundId', data->'providerRefundId', 'tokensDebited', data->'tokensDebited')
                    END AS metadata,
                    (data->>'occurredAt')::timestamptz AS occurred_at, event_id, stream_revision
               FROM events WHERE events.event_type IN ('PaymentCaptured', 'PaymentFailed', 'PaymentExpired', 'PaymentRefundRequested', 'PaymentRefundFailed', 'PaymentRefunded') AND events.transaction_id = pg_current_xact_id()
              ORDER BY payment_id, transaction_id DESC, global_position DESC) AS last_event
       LEFT JOIN (SELECT DISTINCT ON (payment_id) (data->>'paymentId')::uuid AS payment_id, data->>'providerTransactionId' AS provider_transaction_id
                    FROM events WHERE events.event_type = 'PaymentCaptured' AND data->>'providerTransactionId' IS NOT NULL AND events.transaction_id = pg_current_xact_id()
                   ORDER BY payment_id, transaction_id DESC, global_position DESC) AS captured ON captured.payment_id = last_event.payment_id
      WHERE payments.id = last_event.payment_id;
UPDATE payments SET metadata = jsonb_set(payments.metadata, '{tokensDebited}', to_jsonb(coalesce((payments.metadata->>'tokensDebited')::bigint, 0) + taken.amount))
       FROM (SELECT (data->>'paymentId')::uuid AS payment_id, sum((data->>'amount')::bigint) AS amount
               FROM events WHERE events.event_type = 'TokensRefunded' AND data->>'heldAtRefund' = 'true' AND events.transaction_id = pg_current_xact_id()
              GROUP BY payment_id) AS taken
      WHERE payments.id = taken.payment_id;
INSERT INTO token_holds (hold_id, user_id, amount, description, status, expires_at, draws, created_at, event_id, stream_revision, metadata)
     SELECT (data->>'holdId')::uuid, (data->>'userId')::uuid, (data->>'amount')::bigint, data->>'description', 'active',
            (data->>'expiresAt')::timestamptz, data->'draws', (data->>'occurredAt')::timestamptz, event_id, stream_revision, data->'metadata'
       FROM events WHERE events.event_type = 'TokensHeld' AND events.transaction_id = pg_current_xact_id();
UPDATE token_holds SET
            status = ended.status, settled_amount = ended.settled_amount, transaction_id = ended.transaction_id, ended_at = ended.ended_at
       FROM (SELECT (data->>'holdId')::uuid AS hold_id,
                    CASE event_type WHEN 'HoldSettled' THEN 'settled' WHEN 'HoldReleased' THEN 'released' ELSE 'expired' END AS status,
                    (data->>'settledAmount')::bigint AS settled_amount, (data->>'transactionId')::uuid AS transaction_id,
                    (CASE event_type WHEN 'HoldExpired' THEN data->>'expiresAt' ELSE data->>'occurredAt' END)::timestamptz AS ended_at
               FROM events WHERE events.event_type IN ('HoldSettled', 'HoldReleased', 'HoldExpired') AND events.transaction_id = pg_current_xact_id()) AS ended
      WHERE token_holds.hold_id = ended.hold_id;
INSERT INTO token_lots (user_id, lot_id, source, payment_id, transaction_id, original, remaining, priority, expires_at, status, created_at, stream_revision)
     SELECT user_id, lot_id, source, payment_id, transaction_id, sum(amount), sum(amount), priority, expires_at, 'active', min(created_at), min(stream_revision)
       FROM (SELECT (data->>'userId')::uuid AS user_id, coalesce(data->'lot'->>'lotId', 'opening') AS lot_id,
                    CASE WHEN data->'lot' IS NULL THEN 'opening' WHEN event_type = 'TokensPurchased' THEN 'purchase'
                         WHEN event_type = 'TokensGranted' THEN 'grant' ELSE 'adjustment' END AS source,
                    CASE WHEN data->'lot' IS NOT NULL AND event_type = 'TokensPurchased' THEN (data->>'paymentId')::uuid END AS payment_id,
                    CASE WHEN data->'lot' IS NOT NULL THEN (data->>'transactionId')::uuid END AS transaction_id,
                    (data->>'amount')::bigint AS amount, coalesce((data->'lot'->>'priority')::integer, 100) AS priority,
                    (data->'lot'->>'expiresAt')::timestamptz AS expires_at, (data->>'occurredAt')::timestamptz AS created_at, stream_revision
               FROM events WHERE (events.event_type IN ('TokensPurchased', 'TokensGranted') OR (events.event_type = 'TokensAdjusted' AND (data->>'amount')::bigint > 0)) AND events.transaction_id = pg_current_xact_id()) AS credits
      GROUP BY user_id, lot_id, source, payment_id, transaction_id, priority, expires_at
     ON CONFLICT (user_id, lot_id) DO UPDATE SET
              original = token_lots.original + excluded.original,
              remaining = token_lots.remaining + excluded.remaining,
              status = 'active';
UPDATE token_lots SET
            remaining = token_lots.remaining - drawn.amount,
            status = CASE WHEN drawn.closing IS NOT NULL AND (drawn.closing <> 'refunded' OR token_lots.source = 'purchase') THEN drawn.closing
                          WHEN token_lots.status IN ('expired', 'voided', 'refunded') THEN token_lots.status
                          WHEN token_lots.remaining - drawn.amount = 0 THEN CASE WHEN token_lots.expires_at <= drawn.occurred_at THEN 'expired' ELSE 'spent' END
                          ELSE 'active' END
       FROM (SELECT user_id, lot_id, sum(amount) AS amount, max(occurred_at) AS occurred_at,
                    (array_agg(closing ORDER BY transaction_id DESC, global_position DESC) FILTER (WHERE closing IS NOT NULL))[1] AS closing
               FROM (SELECT (data->>'userId')::uuid AS user_id, draw->>'lotId' AS lot_id, (draw->>'amount')::bigint AS amount,
                            CASE event_type WHEN 'LotExpired' THEN 'expired' WHEN 'GrantVoided' THEN 'voided' WHEN 'TokensRefunded' THEN 'refunded' END AS closing,
                            (data->>'occurredAt')::timestamptz AS occurred_at, transaction_id, global_position
                       FROM events CROSS JOIN LATERAL jsonb_array_elements(
                              coalesce(data->'draws', jsonb_build_array(jsonb_build_object('lotId', 'opening', 'amount', abs((data->>'amount')::bigint))))) AS draw
                      WHERE (events.event_type IN ('TokensUsed', 'TokensRefunded', 'GrantVoided', 'LotExpired', 'TokensChargedBack', 'ShortfallCovered') OR (events.event_type = 'TokensAdjusted' AND (data->>'amount')::bigint < 0)
                      OR (events.event_type = 'HoldSettled' AND events.data->'draws' IS NOT NULL)) AND events.transaction_id = pg_current_xact_id()) AS draws
              GROUP BY user_id, lot_id) AS drawn
      WHERE token_lots.user_id = drawn.user_id AND token_lots.lot_id = drawn.lot_id;
UPDATE payments SET dispute_id = last_event.dispute_id, dispute_status = last_event.dispute_status
       FROM (SELECT DISTINCT ON (payment_id) (data->>'paymentId')::uuid AS payment_id, data->>'disputeId' AS dispute_id,
                    CASE event_type WHEN 'PaymentDisputeOpened' THEN 'open' ELSE data->>'outcome' END AS dispute_status
               FROM events WHERE events.event_type IN ('PaymentDisputeOpened', 'PaymentDisputeClosed') AND events.transaction_id = pg_current_xact_id()
              ORDER BY payment_id, transaction_id DESC, global_position DESC) AS last_event
      WHERE payments.id = last_event.payment_id;
UPDATE user_tokens SET shortfall = last_event.shortfall
       FROM (SELECT DISTINCT ON (user_id) (data->>'userId')::uuid AS user_id, (data->>'shortfallAfter')::bigint AS shortfall
               FROM events WHERE events.event_type IN ('PaymentDisputeClosed', 'ShortfallCovered') AND events.transaction_id = pg_current_xact_id()
              ORDER BY user_id, transaction_id DESC, global_position DESC) AS last_event
      WHERE user_tokens.user_id = last_event.user_id;
INSERT INTO token_accounts_inline_commits (transaction_id) VALUES (pg_current_xact_id());
END;
$fn$;
