import { PAYMENT_TIMED_OUT, tokenAccountStreamId } from '@app/ledger';
import type { AccountRows, BulkLoad } from '../../projection.js';

/** The transactions whose events token_accounts applied inline (see the inline-projections migration). */
export const TOKEN_ACCOUNTS_INLINE_COMMITS = 'token_accounts_inline_commits';

const TOKEN_TYPES = `events.event_type IN ('TokensPurchased', 'TokensUsed', 'TokensRefunded', 'TokensAdjusted')`;
const PAYMENT_UPDATE_TYPES = `events.event_type IN ('PaymentCaptured', 'PaymentFailed', 'PaymentExpired', 'PaymentRefundRequested', 'PaymentRefunded')`;
// Events up to the position $1/$2 (inclusive). Only committed events can be at or before a position
// read as the head, so the set is fixed.
const UP_TO = `(events.transaction_id, events.global_position) <= ($1::text::xid8, $2::bigint)`;
// Events after $1/$2 (exclusive) and up to $3/$4 (inclusive), less those an inline application
// already put in these tables (their transactions are listed in the projection's own table).
const BETWEEN = `(events.transaction_id, events.global_position) > ($1::text::xid8, $2::bigint)
  AND (events.transaction_id, events.global_position) <= ($3::text::xid8, $4::bigint)
  AND NOT EXISTS (SELECT 1 FROM ${TOKEN_ACCOUNTS_INLINE_COMMITS} applied WHERE applied.transaction_id = events.transaction_id)`;

/** The events one transaction appended: those of the inline application (`transaction`: an xid8 expression, stable, so the index on `$all` order is used). */
function ofTransaction(transaction: string): string {
  return `events.transaction_id = ${transaction}`;
}
const CHUNK = `events.global_position BETWEEN $3::bigint AND $4::bigint`;

/** One token_transactions row per event, exactly as `project` writes it. */
function insertTransactions(where: string): string {
  return `INSERT INTO token_transactions (id, user_id, amount, transaction_type, description, payment_id, balance_after, created_at, event_id, stream_revision)
     SELECT (data->>'transactionId')::uuid, (data->>'userId')::uuid,
            CASE WHEN event_type IN ('TokensPurchased', 'TokensAdjusted') THEN (data->>'amount')::bigint ELSE -(data->>'amount')::bigint END,
            CASE event_type WHEN 'TokensPurchased' THEN 'purchase' WHEN 'TokensUsed' THEN 'usage' WHEN 'TokensAdjusted' THEN 'adjustment' ELSE 'refund' END,
            CASE event_type WHEN 'TokensAdjusted' THEN data->>'reason' ELSE data->>'description' END,
            CASE WHEN event_type IN ('TokensPurchased', 'TokensRefunded') THEN (data->>'paymentId')::uuid END,
            (data->>'balanceAfter')::bigint, (data->>'occurredAt')::timestamptz, event_id, stream_revision
       FROM events WHERE ${TOKEN_TYPES} AND ${where}`;
}

/**
 * Per user, of its events in the range: the last one in `$all` order gives the balance, time,
 * revision and position, the first one the creation time, and the count is added. As an upsert it
 * merges into earlier rows the way the per-event upsert of `project` does.
 *
 * The rows are inserted in the `$all` order of each user's last event: that sort cannot start before
 * every user's row is computed, so the statement takes its transaction id (at its first insert) only
 * once the long aggregation over the whole range is done. Sorted by user instead, the first row
 * would be inserted at once, and the id held for the whole aggregation would hide newer events from
 * `$all` (and the live runner) meanwhile.
 */
function upsertBalances(where: string, merge: boolean): string {
  return `INSERT INTO user_tokens (user_id, balance, transaction_count, created_at, updated_at, last_event_revision, last_event_position)
     SELECT user_id, balance_after, transaction_count, created_at, updated_at, stream_revision, transaction_id::text || '/' || global_position::text
       FROM (SELECT DISTINCT ON (user_id) user_id, balance_after, count(*) OVER whole AS transaction_count, first_value(occurred_at) OVER whole AS created_at,
                    occurred_at AS updated_at, stream_revision, transaction_id, global_position
               FROM (SELECT (data->>'userId')::uuid AS user_id, (data->>'balanceAfter')::bigint AS balance_after,
                            (data->>'occurredAt')::timestamptz AS occurred_at, stream_revision, transaction_id, global_position
                       FROM events WHERE ${TOKEN_TYPES} AND ${where}) AS account_events
             WINDOW whole AS (PARTITION BY user_id ORDER BY transaction_id, global_position ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
             ORDER BY user_id, transaction_id DESC, global_position DESC) AS last_events
      ORDER BY transaction_id, global_position
     ${
       merge
         ? `ON CONFLICT (user_id) DO UPDATE SET
              balance = excluded.balance,
              transaction_count = user_tokens.transaction_count + excluded.transaction_count,
              updated_at = excluded.updated_at,
              last_event_revision = excluded.last_event_revision,
              last_event_position = excluded.last_event_position`
         : ''
     }`;
}

/** One PENDING `payments` row per `PaymentInitiated`, as `projectPaymentEvent` inserts it. */
function insertPayments(where: string): string {
  return `INSERT INTO payments (id, user_id, status, package_id, tokens_purchased, amount, currency, provider, order_id, metadata,
                               created_at, updated_at, expires_at, last_event_id, last_event_revision)
     SELECT (data->>'paymentId')::uuid, (data->>'userId')::uuid, 'PENDING', data->>'packageId', (data->>'tokens')::bigint, (data->>'amount')::bigint,
            data->>'currency', data->>'provider', data->>'orderId', '{}'::jsonb,
            (data->>'occurredAt')::timestamptz, (data->>'occurredAt')::timestamptz, (data->>'expiresAt')::timestamptz, event_id, stream_revision
       FROM events WHERE events.event_type = 'PaymentInitiated' AND ${where}`;
}

/**
 * Each payment's row after the later events of the range. Every per-event UPDATE of `project`
 * overwrites status, metadata, time and trace, so the last event in `$all` order decides them; the
 * provider transaction id is `coalesce(new, old)` there, so it is the last non-null one of the range,
 * else what the row held. An update of a payment without a row changes nothing, as in `project`.
 */
function updatePayments(where: string): string {
  const timedOut = PAYMENT_TIMED_OUT.replaceAll("'", "''");
  return `UPDATE payments SET
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
                      WHEN 'PaymentExpired' THEN jsonb_build_object('error', '${timedOut}'::text)
                      ELSE jsonb_build_object('providerRefundId', data->'providerRefundId', 'tokensDebited', data->'tokensDebited')
                    END AS metadata,
                    (data->>'occurredAt')::timestamptz AS occurred_at, event_id, stream_revision
               FROM events WHERE ${PAYMENT_UPDATE_TYPES} AND ${where}
              ORDER BY payment_id, transaction_id DESC, global_position DESC) AS last_event
       LEFT JOIN (SELECT DISTINCT ON (payment_id) (data->>'paymentId')::uuid AS payment_id, data->>'providerTransactionId' AS provider_transaction_id
                    FROM events WHERE events.event_type = 'PaymentCaptured' AND data->>'providerTransactionId' IS NOT NULL AND ${where}
                   ORDER BY payment_id, transaction_id DESC, global_position DESC) AS captured ON captured.payment_id = last_event.payment_id
      WHERE payments.id = last_event.payment_id`;
}

/**
 * token_accounts built set-based, inside PostgreSQL: no event leaves the database. Each value is the
 * one `tokenAccountsProjection.project` writes, for `user_tokens`, `token_transactions` and
 * `payments` alike (the rebuild specs compare every row with an incremental build). Payments are
 * inserted chunk by chunk and take their final state once every chunk is in.
 */
export const tokenAccountsBulkLoad: BulkLoad = {
  eventTypes: ['TokensPurchased', 'TokensUsed', 'TokensRefunded', 'TokensAdjusted', 'PaymentInitiated', 'PaymentCaptured', 'PaymentFailed', 'PaymentExpired', 'PaymentRefundRequested', 'PaymentRefunded'],
  chunked: [insertTransactions(`${UP_TO} AND ${CHUNK}`), insertPayments(`${UP_TO} AND ${CHUNK}`)],
  final: [upsertBalances(UP_TO, false), updatePayments(UP_TO)],
  delta: [insertTransactions(BETWEEN), upsertBalances(BETWEEN, true), insertPayments(BETWEEN), updatePayments(BETWEEN)],
  inline: {
    appliedTransactions: TOKEN_ACCOUNTS_INLINE_COMMITS,
    // Migration 060 (first 042); the inline-projections spec proves its body equal to these statements.
    function: 'token_accounts_apply_inline',
    statements: (transaction) => {
      const where = ofTransaction(transaction);
      return [insertTransactions(where), upsertBalances(where, true), insertPayments(where), updatePayments(where)];
    },
  },
};

export function tokenAccountsAccountRows(userId: string): AccountRows {
  return {
    streamId: tokenAccountStreamId(userId),
    clear: [
      { text: 'DELETE FROM token_transactions WHERE user_id = $1', values: [userId] },
      { text: 'DELETE FROM user_tokens WHERE user_id = $1', values: [userId] },
      { text: 'DELETE FROM payments WHERE user_id = $1', values: [userId] },
    ],
    read: [
      { text: 'SELECT user_tokens::text AS row FROM user_tokens WHERE user_id = $1', values: [userId] },
      { text: 'SELECT token_transactions::text AS row FROM token_transactions WHERE user_id = $1 ORDER BY stream_revision', values: [userId] },
      { text: 'SELECT payments::text AS row FROM payments WHERE user_id = $1 ORDER BY created_at, id', values: [userId] },
    ],
  };
}
