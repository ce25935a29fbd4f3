import { LOT_PRIORITY_DEFAULT, OPENING_LOT_ID, PAYMENT_TIMED_OUT, TOKEN_ACCOUNT_EVENT_TYPES, tokenAccountStreamId } from '@app/ledger';
import type { AccountRows, BulkLoad } from '../../projection.js';
import { lotExpiredDescription } from './token-transaction.view.js';

/** The transactions whose events token_accounts applied inline (see the inline-projections migration). */
export const TOKEN_ACCOUNTS_INLINE_COMMITS = 'token_accounts_inline_commits';

/** A settle that records its own debit (ADR 0028); one written before has no draws, and its TokensUsed debits. */
const SETTLE_WITH_DEBIT = `(events.event_type = 'HoldSettled' AND events.data->'draws' IS NOT NULL)`;
/** The events that make a token_transactions row (`transactionOf`). */
const TOKEN_TYPES = `(events.event_type IN ('TokensPurchased', 'TokensUsed', 'TokensRefunded', 'TokensAdjusted', 'TokensGranted', 'GrantVoided', 'LotExpired',
                                             'TokensChargedBack', 'ShortfallCovered') OR ${SETTLE_WITH_DEBIT})`;
/** The events that record the balance and held total after them: user_tokens takes the last one's. */
const BALANCE_TYPES = `events.event_type IN ('TokensPurchased', 'TokensUsed', 'TokensRefunded', 'TokensAdjusted', 'TokensGranted', 'GrantVoided', 'LotExpired',
                                              'TokensChargedBack', 'ShortfallCovered', 'TokensHeld', 'HoldSettled', 'HoldReleased', 'HoldExpired')`;
const HOLD_END_TYPES = `events.event_type IN ('HoldSettled', 'HoldReleased', 'HoldExpired')`;
/** Credits: each creates a lot (or, written before lots, adds to the opening lot). */
const CREDIT_TYPES = `(events.event_type IN ('TokensPurchased', 'TokensGranted') OR (events.event_type = 'TokensAdjusted' AND (data->>'amount')::bigint > 0))`;
/** Debits: each draws from lots (written before lots: from the opening lot). */
const DEBIT_TYPES = `(events.event_type IN ('TokensUsed', 'TokensRefunded', 'GrantVoided', 'LotExpired', 'TokensChargedBack', 'ShortfallCovered') OR (events.event_type = 'TokensAdjusted' AND (data->>'amount')::bigint < 0)
                      OR ${SETTLE_WITH_DEBIT})`;
const OPENING = `'${OPENING_LOT_ID}'`;
/** A credit written with lots: it creates a lot of its own (else, written before lots, it adds to the opening lot). */
const CARRIES_LOT = `(events.data->'lot' IS NOT NULL)`;
/** A lot's status after a debit: what closed it (expiry, void, a refund of its purchase), else spent or active by what is left. */
const CLOSED_STATUSES = `('expired', 'voided', 'refunded')`;
const PAYMENT_UPDATE_TYPES = `events.event_type IN ('PaymentCaptured', 'PaymentFailed', 'PaymentExpired', 'PaymentRefundRequested', 'PaymentRefundFailed', 'PaymentRefunded')`;
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
  const expired = lotExpiredDescription("' || (data->>'lotId') || '");
  return `INSERT INTO token_transactions (id, user_id, amount, transaction_type, description, payment_id, balance_after, created_at, event_id, stream_revision,
                                  hold_id, lot_id, draws, metadata)
     SELECT (data->>'transactionId')::uuid, (data->>'userId')::uuid,
            CASE WHEN event_type IN ('TokensPurchased', 'TokensAdjusted', 'TokensGranted') THEN (data->>'amount')::bigint
                 WHEN event_type = 'HoldSettled' THEN -(data->>'settledAmount')::bigint ELSE -(data->>'amount')::bigint END,
            CASE event_type WHEN 'TokensPurchased' THEN 'purchase' WHEN 'TokensUsed' THEN 'usage' WHEN 'HoldSettled' THEN 'usage' WHEN 'TokensRefunded' THEN 'refund'
                            WHEN 'LotExpired' THEN 'expiry' WHEN 'TokensChargedBack' THEN 'chargeback' WHEN 'ShortfallCovered' THEN 'chargeback' ELSE 'adjustment' END,
            CASE WHEN event_type IN ('TokensAdjusted', 'TokensGranted', 'GrantVoided') THEN data->>'reason'
                 WHEN event_type = 'LotExpired' THEN '${expired}' ELSE data->>'description' END,
            CASE WHEN event_type IN ('TokensPurchased', 'TokensRefunded', 'TokensChargedBack') THEN (data->>'paymentId')::uuid END,
            (data->>'balanceAfter')::bigint, (data->>'occurredAt')::timestamptz, event_id, stream_revision,
            (data->>'holdId')::uuid, data->'lot'->>'lotId', data->'draws', CASE WHEN event_type IN ('TokensUsed', 'HoldSettled') THEN data->'metadata' END
       FROM events WHERE ${TOKEN_TYPES} AND ${where}`;
}

/**
 * How a `user_tokens` row takes a later one: its balance, held total, time and trace, and the
 * transaction rows counted on. `project`'s per-event upsert and the set-based `upsertBalances` merge
 * alike.
 */
export const MERGE_BALANCE = `ON CONFLICT (user_id) DO UPDATE SET
    balance = excluded.balance,
    held = excluded.held,
    transaction_count = user_tokens.transaction_count + excluded.transaction_count,
    updated_at = excluded.updated_at,
    last_event_revision = excluded.last_event_revision,
    last_event_position = excluded.last_event_position`;

/**
 * Per user, of its events in the range: the last one in `$all` order gives the balance, time,
 * revision and position, the first one the creation time, and the count is added. As an upsert it
 * merges into earlier rows the way the per-event upsert of `project` does (a whole history goes into
 * an empty table by `insertBalances` instead).
 *
 * The rows are inserted in the `$all` order of each user's last event: that sort cannot start before
 * every user's row is computed, so the statement takes its transaction id (at its first insert) only
 * once the long aggregation over the whole range is done. Sorted by user instead, the first row
 * would be inserted at once, and the id held for the whole aggregation would hide newer events from
 * `$all` (and the live runner) meanwhile.
 */
function upsertBalances(where: string): string {
  return `INSERT INTO user_tokens (user_id, balance, held, transaction_count, created_at, updated_at, last_event_revision, last_event_position)
     SELECT user_id, balance_after, held_after, transaction_count, created_at, updated_at, stream_revision, transaction_id::text || '/' || global_position::text
       FROM (SELECT DISTINCT ON (user_id) user_id, balance_after, held_after, count(*) FILTER (WHERE makes_row) OVER whole AS transaction_count,
                    first_value(occurred_at) OVER whole AS created_at, occurred_at AS updated_at, stream_revision, transaction_id, global_position
               FROM (SELECT (data->>'userId')::uuid AS user_id, (data->>'balanceAfter')::bigint AS balance_after,
                            coalesce((data->>'heldAfter')::bigint, 0) AS held_after, ${TOKEN_TYPES} AS makes_row,
                            (data->>'occurredAt')::timestamptz AS occurred_at, stream_revision, transaction_id, global_position
                       FROM events WHERE ${BALANCE_TYPES} AND ${where}) AS account_events
             WINDOW whole AS (PARTITION BY user_id ORDER BY transaction_id, global_position ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
             ORDER BY user_id, transaction_id DESC, global_position DESC) AS last_events
      ORDER BY transaction_id, global_position
     ${MERGE_BALANCE}`;
}

/**
 * `upsertBalances` over a whole history into an empty table, without its sort: per account stream
 * (one per user; grouped by the column, whose distinct count the planner knows, so it hashes one
 * row per user), the count and the first and last of its events in `$all` order are aggregated, then
 * those two events are read back by position. The window instead sorts every event: 9.6 s of a 45 s
 * cold load of 1,000,000 events, spilling about 450 MB at the default `work_mem`. The same rows (the
 * rebuild specs compare both with an incremental build). The aggregation ends before the first row
 * is written, so the statement's transaction id is held only while it inserts one row per user.
 */
function insertBalances(where: string): string {
  // $all order as one comparable value: (transaction id, position).
  const order = 'ARRAY[events.transaction_id::text::bigint, events.global_position]';
  return `INSERT INTO user_tokens (user_id, balance, held, transaction_count, created_at, updated_at, last_event_revision, last_event_position)
     SELECT (last_event.data->>'userId')::uuid, (last_event.data->>'balanceAfter')::bigint, coalesce((last_event.data->>'heldAfter')::bigint, 0), accounts.transaction_count,
            (first_event.data->>'occurredAt')::timestamptz, (last_event.data->>'occurredAt')::timestamptz, last_event.stream_revision,
            last_event.transaction_id::text || '/' || last_event.global_position::text
       FROM (SELECT count(*) FILTER (WHERE ${TOKEN_TYPES}) AS transaction_count, min(${order}) AS first, max(${order}) AS last
               FROM events WHERE ${BALANCE_TYPES} AND ${where}
              GROUP BY events.stream_id) AS accounts
       JOIN events AS first_event ON first_event.global_position = accounts.first[2]
       JOIN events AS last_event ON last_event.global_position = accounts.last[2]
      ORDER BY last_event.transaction_id, last_event.global_position`;
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
                    CASE event_type WHEN 'PaymentCaptured' THEN 'COMPLETED' WHEN 'PaymentRefundRequested' THEN 'REFUND_PENDING' WHEN 'PaymentRefundFailed' THEN 'COMPLETED'
                                    WHEN 'PaymentRefunded' THEN 'REFUNDED' ELSE 'FAILED' END AS status,
                    CASE event_type
                      WHEN 'PaymentCaptured' THEN '{}'::jsonb
                      WHEN 'PaymentRefundRequested' THEN '{}'::jsonb
                      WHEN 'PaymentRefundFailed' THEN jsonb_build_object('refundError', data->'reason')
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
 * What the refunds of the range took later, when a hold gave back tokens it held at the refund
 * (`TokensRefunded` with `heldAtRefund`), added to each payment's `tokensDebited`, as
 * `projectLateRefund` adds them event by event. Run after `updatePayments`, whose `PaymentRefunded`
 * sets the refund's first take.
 */
function addLateRefunds(where: string): string {
  return `UPDATE payments SET metadata = jsonb_set(payments.metadata, '{tokensDebited}', to_jsonb(coalesce((payments.metadata->>'tokensDebited')::bigint, 0) + taken.amount))
       FROM (SELECT (data->>'paymentId')::uuid AS payment_id, sum((data->>'amount')::bigint) AS amount
               FROM events WHERE events.event_type = 'TokensRefunded' AND data->>'heldAtRefund' = 'true' AND ${where}
              GROUP BY payment_id) AS taken
      WHERE payments.id = taken.payment_id`;
}

/**
 * Each disputed payment's dispute id and status after the range's dispute events (the last one in
 * `$all` order), as `projectDisputeEvent` sets them event by event.
 */
function updateDisputes(where: string): string {
  return `UPDATE payments SET dispute_id = last_event.dispute_id, dispute_status = last_event.dispute_status
       FROM (SELECT DISTINCT ON (payment_id) (data->>'paymentId')::uuid AS payment_id, data->>'disputeId' AS dispute_id,
                    CASE event_type WHEN 'PaymentDisputeOpened' THEN 'open' ELSE data->>'outcome' END AS dispute_status
               FROM events WHERE events.event_type IN ('PaymentDisputeOpened', 'PaymentDisputeClosed') AND ${where}
              ORDER BY payment_id, transaction_id DESC, global_position DESC) AS last_event
      WHERE payments.id = last_event.payment_id`;
}

/** Each account's shortfall after the range: the `shortfallAfter` of its last dispute close or cover in `$all` order. */
function updateShortfalls(where: string): string {
  return `UPDATE user_tokens SET shortfall = last_event.shortfall
       FROM (SELECT DISTINCT ON (user_id) (data->>'userId')::uuid AS user_id, (data->>'shortfallAfter')::bigint AS shortfall
               FROM events WHERE events.event_type IN ('PaymentDisputeClosed', 'ShortfallCovered') AND ${where}
              ORDER BY user_id, transaction_id DESC, global_position DESC) AS last_event
      WHERE user_tokens.user_id = last_event.user_id`;
}

/** One active `token_holds` row per `TokensHeld`, as `projectHoldEvent` inserts it. */
function insertHolds(where: string): string {
  return `INSERT INTO token_holds (hold_id, user_id, amount, description, status, expires_at, draws, created_at, event_id, stream_revision, metadata)
     SELECT (data->>'holdId')::uuid, (data->>'userId')::uuid, (data->>'amount')::bigint, data->>'description', 'active',
            (data->>'expiresAt')::timestamptz, data->'draws', (data->>'occurredAt')::timestamptz, event_id, stream_revision, data->'metadata'
       FROM events WHERE events.event_type = 'TokensHeld' AND ${where}`;
}

/**
 * Each ended hold's row: a hold ends once (settled, released or expired), so no order matters. An
 * expired hold ends at its `expiresAt`, as `projectHoldEvent` ends it, not when its expiry was recorded.
 */
function endHolds(where: string): string {
  return `UPDATE token_holds SET
            status = ended.status, settled_amount = ended.settled_amount, transaction_id = ended.transaction_id, ended_at = ended.ended_at
       FROM (SELECT (data->>'holdId')::uuid AS hold_id,
                    CASE event_type WHEN 'HoldSettled' THEN 'settled' WHEN 'HoldReleased' THEN 'released' ELSE 'expired' END AS status,
                    (data->>'settledAmount')::bigint AS settled_amount, (data->>'transactionId')::uuid AS transaction_id,
                    (CASE event_type WHEN 'HoldExpired' THEN data->>'expiresAt' ELSE data->>'occurredAt' END)::timestamptz AS ended_at
               FROM events WHERE ${HOLD_END_TYPES} AND ${where}) AS ended
      WHERE token_holds.hold_id = ended.hold_id`;
}

/**
 * One `token_lots` row per credit's lot; the credits of a stream written before lots add up in its
 * opening lot. `merge` adds to an existing opening lot (the only lot two credits share), which keeps
 * its creation: `created_at` and `stream_revision` are its first credit's in the stream (the revision
 * is the draw order's "oldest first", as the ledger's lot sequence is), as the event-by-event
 * projection keeps them: not the earliest `occurredAt`, which a writer's clock behind another's
 * would give.
 */
function upsertLots(where: string, merge: boolean): string {
  return `INSERT INTO token_lots (user_id, lot_id, source, payment_id, transaction_id, original, remaining, priority, expires_at, status, created_at, stream_revision)
     SELECT user_id, lot_id, source, payment_id, transaction_id, sum(amount), sum(amount), priority, expires_at, 'active', (array_agg(created_at ORDER BY stream_revision))[1], min(stream_revision)
       FROM (SELECT (data->>'userId')::uuid AS user_id, coalesce(data->'lot'->>'lotId', ${OPENING}) AS lot_id,
                    CASE WHEN data->'lot' IS NULL THEN 'opening' WHEN event_type = 'TokensPurchased' THEN 'purchase'
                         WHEN event_type = 'TokensGranted' THEN 'grant' ELSE 'adjustment' END AS source,
                    CASE WHEN data->'lot' IS NOT NULL AND event_type = 'TokensPurchased' THEN (data->>'paymentId')::uuid END AS payment_id,
                    CASE WHEN data->'lot' IS NOT NULL THEN (data->>'transactionId')::uuid END AS transaction_id,
                    (data->>'amount')::bigint AS amount, coalesce((data->'lot'->>'priority')::integer, ${LOT_PRIORITY_DEFAULT}) AS priority,
                    (data->'lot'->>'expiresAt')::timestamptz AS expires_at, (data->>'occurredAt')::timestamptz AS created_at, stream_revision
               FROM events WHERE ${CREDIT_TYPES} AND ${where}) AS credits
      GROUP BY user_id, lot_id, source, payment_id, transaction_id, priority, expires_at
     ${
       merge
         ? `ON CONFLICT (user_id, lot_id) DO UPDATE SET
              original = token_lots.original + excluded.original,
              remaining = token_lots.remaining + excluded.remaining,
              status = 'active'`
         : ''
     }`;
}

/**
 * The lots of the credits that carry one, a row each: such a lot is its credit's alone (its id is the
 * credit's transaction id), so nothing is summed and `upsertLots` need not group them. In the bulk
 * load's chunks, about a third cheaper than grouping.
 */
function insertCarriedLots(where: string): string {
  return `INSERT INTO token_lots (user_id, lot_id, source, payment_id, transaction_id, original, remaining, priority, expires_at, status, created_at, stream_revision)
     SELECT (data->>'userId')::uuid, data->'lot'->>'lotId',
            CASE WHEN event_type = 'TokensPurchased' THEN 'purchase' WHEN event_type = 'TokensGranted' THEN 'grant' ELSE 'adjustment' END,
            CASE WHEN event_type = 'TokensPurchased' THEN (data->>'paymentId')::uuid END, (data->>'transactionId')::uuid,
            (data->>'amount')::bigint, (data->>'amount')::bigint, coalesce((data->'lot'->>'priority')::integer, ${LOT_PRIORITY_DEFAULT}),
            (data->'lot'->>'expiresAt')::timestamptz, 'active', (data->>'occurredAt')::timestamptz, stream_revision
       FROM events WHERE ${CREDIT_TYPES} AND ${CARRIES_LOT} AND ${where}`;
}

/**
 * Every lot's remainder after the debits of the range (their `draws`; a debit written before lots
 * drew from the opening lot), and its status: the last event of the range that closed it (an
 * expiry, a void, or a refund of the purchase it came from), else a status it was closed with
 * before, else spent or active by what is left; emptied at or after its expiry (a hold that held
 * all of it settled after it expired, so no `LotExpired` ever closed it), expired, as the lot list
 * showed it from its expiry on: judged by the time of the range's last debit of the lot, the one that
 * emptied it, not the latest time among its debits (a command decided again after a conflict may
 * keep a time earlier than a debit before it). The same rule `DRAW_FROM_LOT` applies draw by draw.
 */
function debitLots(where: string): string {
  return `UPDATE token_lots SET
            remaining = token_lots.remaining - drawn.amount,
            status = CASE WHEN drawn.closing IS NOT NULL AND (drawn.closing <> 'refunded' OR token_lots.source = 'purchase') THEN drawn.closing
                          WHEN token_lots.status IN ${CLOSED_STATUSES} THEN token_lots.status
                          WHEN token_lots.remaining - drawn.amount = 0 THEN CASE WHEN token_lots.expires_at <= drawn.occurred_at THEN 'expired' ELSE 'spent' END
                          ELSE 'active' END
       FROM (SELECT user_id, lot_id, sum(amount) AS amount, (array_agg(occurred_at ORDER BY transaction_id DESC, global_position DESC))[1] AS occurred_at,
                    (array_agg(closing ORDER BY transaction_id DESC, global_position DESC) FILTER (WHERE closing IS NOT NULL))[1] AS closing
               FROM (SELECT (data->>'userId')::uuid AS user_id, draw->>'lotId' AS lot_id, (draw->>'amount')::bigint AS amount,
                            CASE event_type WHEN 'LotExpired' THEN 'expired' WHEN 'GrantVoided' THEN 'voided' WHEN 'TokensRefunded' THEN 'refunded' END AS closing,
                            (data->>'occurredAt')::timestamptz AS occurred_at, transaction_id, global_position
                       FROM events CROSS JOIN LATERAL jsonb_array_elements(
                              coalesce(data->'draws', jsonb_build_array(jsonb_build_object('lotId', ${OPENING}, 'amount', abs((data->>'amount')::bigint))))) AS draw
                      WHERE ${DEBIT_TYPES} AND ${where}) AS draws
              GROUP BY user_id, lot_id) AS drawn
      WHERE token_lots.user_id = drawn.user_id AND token_lots.lot_id = drawn.lot_id`;
}

/**
 * The statements that add the rows of the events `where` selects to tables that may already hold
 * rows of earlier events (they merge, as `project` does event by event): a catch-up's range, one
 * transaction's events inline, or one account's events into tables cleared of its rows.
 */
function mergedStatements(where: string): readonly string[] {
  return [
    insertTransactions(where),
    upsertBalances(where),
    insertPayments(where),
    updatePayments(where),
    addLateRefunds(where),
    insertHolds(where),
    endHolds(where),
    upsertLots(where, true),
    debitLots(where),
    updateDisputes(where),
    updateShortfalls(where),
  ];
}

/**
 * token_accounts built set-based, inside PostgreSQL: no event leaves the database. Each value is the
 * one `tokenAccountsProjection.project` writes, for `user_tokens`, `token_transactions` and
 * `payments` alike (the rebuild specs compare every row with an incremental build). Payments are
 * inserted chunk by chunk and take their final state once every chunk is in.
 */
export const tokenAccountsBulkLoad: BulkLoad = {
  // Every event the token account folds: the bulk SQL below says what each one writes.
  eventTypes: [...TOKEN_ACCOUNT_EVENT_TYPES],
  // A credit that carries a lot is its lot's only credit (the lot id is its transaction id, which
  // token_transactions keys), so those lots go in by chunk; the opening lot of a stream written
  // before lots gathers credits of every chunk, so it is built in `final`, as are the debits.
  chunked: [
    insertTransactions(`${UP_TO} AND ${CHUNK}`),
    insertPayments(`${UP_TO} AND ${CHUNK}`),
    insertHolds(`${UP_TO} AND ${CHUNK}`),
    insertCarriedLots(`${UP_TO} AND ${CHUNK}`),
  ],
  // By table, the longest list first: lots (the debits of every draw), balances, payments and holds.
  final: [
    [upsertLots(`${UP_TO} AND NOT ${CARRIES_LOT}`, false), debitLots(UP_TO)],
    [insertBalances(UP_TO), updateShortfalls(UP_TO)],
    [updatePayments(UP_TO), addLateRefunds(UP_TO), updateDisputes(UP_TO), endHolds(UP_TO)],
  ],
  delta: mergedStatements(BETWEEN),
  ofEvents: mergedStatements,
  inline: {
    appliedTransactions: TOKEN_ACCOUNTS_INLINE_COMMITS,
    // Migration 146 (first 042, then 060, 081, 110, 122, 123, 128, 133, 135, 140 and 142); the inline-projections spec proves its body equal to these statements.
    function: 'token_accounts_apply_inline',
    statements: (transaction) => mergedStatements(ofTransaction(transaction)),
    firstUnrecordedAfter: (liveTable) => `SELECT min(events.transaction_id)::text AS id FROM events
      WHERE events.transaction_id > $1::text::xid8
        AND NOT EXISTS (SELECT 1 FROM ${liveTable} AS live WHERE live.transaction_id = events.transaction_id)
        AND NOT EXISTS (SELECT 1 FROM ${TOKEN_ACCOUNTS_INLINE_COMMITS} AS carried WHERE carried.transaction_id = events.transaction_id)`,
  },
};

export function tokenAccountsAccountRows(userId: string): AccountRows {
  return {
    streamId: tokenAccountStreamId(userId),
    clear: [
      { text: 'DELETE FROM token_transactions WHERE user_id = $1', values: [userId] },
      { text: 'DELETE FROM user_tokens WHERE user_id = $1', values: [userId] },
      { text: 'DELETE FROM payments WHERE user_id = $1', values: [userId] },
      { text: 'DELETE FROM token_holds WHERE user_id = $1', values: [userId] },
      { text: 'DELETE FROM token_lots WHERE user_id = $1', values: [userId] },
    ],
    read: [
      { text: 'SELECT user_tokens::text AS row FROM user_tokens WHERE user_id = $1', values: [userId] },
      { text: 'SELECT token_transactions::text AS row FROM token_transactions WHERE user_id = $1 ORDER BY stream_revision', values: [userId] },
      { text: 'SELECT payments::text AS row FROM payments WHERE user_id = $1 ORDER BY created_at, id', values: [userId] },
      { text: 'SELECT token_holds::text AS row FROM token_holds WHERE user_id = $1 ORDER BY stream_revision', values: [userId] },
      { text: 'SELECT token_lots::text AS row FROM token_lots WHERE user_id = $1 ORDER BY lot_id', values: [userId] },
    ],
  };
}
