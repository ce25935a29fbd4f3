import { tokenAccountStreamId } from '@app/ledger';
import type { AccountRows, BulkLoad } from './projection.js';

const TYPES = `events.event_type IN ('TokensPurchased', 'TokensUsed')`;
// Events up to the position $1/$2 (inclusive). Only committed events can be at or before a position
// read as the head, so the set is fixed.
const UP_TO = `(events.transaction_id, events.global_position) <= ($1::text::xid8, $2::bigint)`;
// Events after $1/$2 (exclusive) and up to $3/$4 (inclusive).
const BETWEEN = `(events.transaction_id, events.global_position) > ($1::text::xid8, $2::bigint)
  AND (events.transaction_id, events.global_position) <= ($3::text::xid8, $4::bigint)`;

/** One token_transactions row per event, exactly as `project` writes it. */
function insertTransactions(where: string): string {
  return `INSERT INTO token_transactions (id, user_id, amount, transaction_type, description, payment_id, balance_after, created_at, event_id, stream_revision)
     SELECT (data->>'transactionId')::uuid, (data->>'userId')::uuid,
            CASE event_type WHEN 'TokensPurchased' THEN (data->>'amount')::bigint ELSE -(data->>'amount')::bigint END,
            CASE event_type WHEN 'TokensPurchased' THEN 'purchase' ELSE 'usage' END,
            data->>'description',
            CASE event_type WHEN 'TokensPurchased' THEN (data->>'paymentId')::uuid END,
            (data->>'balanceAfter')::bigint, (data->>'occurredAt')::timestamptz, event_id, stream_revision
       FROM events WHERE ${TYPES} AND ${where}`;
}

/**
 * Per user, of its events in the range: the last one in `$all` order gives the balance, time,
 * revision and position, the first one the creation time, and the count is added. As an upsert it
 * merges into earlier rows the way the per-event upsert of `project` does.
 */
function upsertBalances(where: string, merge: boolean): string {
  return `INSERT INTO user_tokens (user_id, balance, transaction_count, created_at, updated_at, last_event_revision, last_event_position)
     SELECT DISTINCT ON (user_id) user_id, balance_after, count(*) OVER whole, first_value(occurred_at) OVER whole, occurred_at,
            stream_revision, transaction_id::text || '/' || global_position::text
       FROM (SELECT (data->>'userId')::uuid AS user_id, (data->>'balanceAfter')::bigint AS balance_after,
                    (data->>'occurredAt')::timestamptz AS occurred_at, stream_revision, transaction_id, global_position
               FROM events WHERE ${TYPES} AND ${where}) AS account_events
     WINDOW whole AS (PARTITION BY user_id ORDER BY transaction_id, global_position ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
     ORDER BY user_id, transaction_id DESC, global_position DESC
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

/**
 * token_accounts built set-based, inside PostgreSQL: no event leaves the database. Each value is the
 * one `tokenAccountsProjection.project` writes (the rebuild specs compare every row with an
 * incremental build).
 */
export const tokenAccountsBulkLoad: BulkLoad = {
  eventTypes: ['TokensPurchased', 'TokensUsed'],
  chunked: [insertTransactions(`${UP_TO} AND events.global_position BETWEEN $3::bigint AND $4::bigint`)],
  final: [upsertBalances(UP_TO, false)],
  delta: [insertTransactions(BETWEEN), upsertBalances(BETWEEN, true)],
};

export function tokenAccountsAccountRows(userId: string): AccountRows {
  return {
    streamId: tokenAccountStreamId(userId),
    clear: [
      { text: 'DELETE FROM token_transactions WHERE user_id = $1', values: [userId] },
      { text: 'DELETE FROM user_tokens WHERE user_id = $1', values: [userId] },
    ],
    read: [
      { text: 'SELECT user_tokens::text AS row FROM user_tokens WHERE user_id = $1', values: [userId] },
      { text: 'SELECT token_transactions::text AS row FROM token_transactions WHERE user_id = $1 ORDER BY stream_revision', values: [userId] },
    ],
  };
}
