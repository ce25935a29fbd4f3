import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { KEY_TIMESTAMP_FORMAT, PG_POOL, pageOf, startOf, toSafeInteger, type CursorShape, type Page, type PagePosition } from '@app/database';
import { LOT_STATUSES, type LotSource, type LotStatus } from '@app/ledger';
import type { Pool } from 'pg';
import { nowOf, TOKEN_ACCOUNTS_OPTIONS, type TokenAccountsOptions } from '../token-accounts.options.js';

export { LOT_STATUSES, type LotStatus };

export type LotView = {
  readonly lotId: string;
  readonly userId: string;
  readonly source: LotSource;
  readonly paymentId: string | null;
  readonly transactionId: string | null;
  readonly original: number;
  readonly remaining: number;
  readonly priority: number;
  readonly expiresAt: string | null;
  readonly status: LotStatus;
  readonly createdAt: string;
};

export type LotPage = Page<LotView>;

/**
 * The lots' keyset: the draw-down order, priority, expiry (none last), creation (the revision of
 * the credit that created the lot, the ledger's "oldest first"), lot id. None of them changes in a
 * lot's life; a lot credited meanwhile lands where its keys put it, so it is shown only if that is
 * after the cursor, and no other lot moves.
 */
export const LOTS_CURSOR: CursorShape = { list: 'lots', parts: ['integer', 'timestampOrNull', 'revision', 'text'] };

/** A user's credit lots from `token_lots` as of now (one past its expiry is expired, recorded or not; see STATUS_NOW), in draw-down order (priority, earliest expiry, oldest), optionally of one status; by offset or after a cursor. */
export class GetLotsQuery extends Query<LotPage> {
  constructor(
    readonly userId: string,
    readonly status: LotStatus | null,
    readonly limit: number,
    readonly position: PagePosition,
  ) {
    super();
  }
}

type LotRow = {
  lot_id: string;
  user_id: string;
  source: LotSource;
  payment_id: string | null;
  transaction_id: string | null;
  original: string;
  remaining: string;
  priority: number;
  expires_at: string | null;
  status: LotStatus;
  created_at: string;
  key_expires_at: string | null;
  stream_revision: string;
};

const ISO = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;

/** A lot without an expiry sorts after every expiry: the same order as `expires_at NULLS LAST`, in an expression the index holds. */
const EXPIRY_ORDER = `coalesce(expires_at, 'infinity'::timestamptz)`;

/** What holds active at $6 (not past their expiry) hold of the lot. */
const HELD_NOW = `(SELECT coalesce(sum((draw->>'amount')::bigint), 0) FROM token_holds, jsonb_array_elements(token_holds.draws) AS draw
                    WHERE token_holds.user_id = token_lots.user_id AND token_holds.status = 'active' AND token_holds.expires_at > $6::timestamptz
                      AND draw->>'lotId' = token_lots.lot_id)`;

/**
 * The lot of a purchase the provider refunded while holds held what was left of it: the refund takes
 * those tokens as the holds give them back, so none is spendable and none expires (the ledger's
 * refund held back). It then has nothing free: what it has left is what holds recorded active hold.
 * `token_lots` records it `active`, `refunded` or `expired` (as the refund found it); it is shown
 * `refunded`, with what live holds still hold of it. Not once a dispute of the payment was lost: that
 * took the refund's part from other lots, and the lot's tokens are the account's again. (Only the
 * latest dispute is in `payments`: after a lost one, a later open or won dispute of the same payment
 * makes a lot that holds still hold whole look like this until the holds end.)
 */
const REFUND_TAKES_HELD = `token_lots.remaining > 0 AND token_lots.status IN ('active', 'expired', 'refunded') AND token_lots.payment_id IS NOT NULL
  AND EXISTS (SELECT 1 FROM payments WHERE payments.id = token_lots.payment_id AND payments.user_id = token_lots.user_id AND payments.status = 'REFUNDED' AND payments.dispute_status IS DISTINCT FROM 'lost')
  AND token_lots.remaining <= (SELECT coalesce(sum((draw->>'amount')::bigint), 0) FROM token_holds, jsonb_array_elements(token_holds.draws) AS draw
                                WHERE token_holds.user_id = token_lots.user_id AND token_holds.status = 'active' AND draw->>'lotId' = token_lots.lot_id)`;

/**
 * A lot past its expiry, recorded or not: as of $6 it is expired, and what it has left is what holds
 * active then still hold of it (its free part expired at its expiresAt; a hold that has ended since
 * gave its part back to an expired lot, which expired it). `token_lots` shows the same once the job
 * records the expiries. (A lot with no expiry compares NULL: false here, so that NOT keeps it.) A
 * refunded purchase's lot with tokens left that the refund does not take (a lost dispute took them
 * from other lots) expires as any lot does. Not a purchase's lot while its refund is in progress: the
 * refund reserved its tokens, so none expire; the list shows it as recorded until the refund ends. A
 * live lot a hold gave tokens back to (not held back for a refund: REFUND_TAKES_HELD) is shown as
 * recorded, though what the hold gave back may go to a shortfall.
 */
const PAST_EXPIRY = `(token_lots.status IN ('active', 'expired') OR (token_lots.status = 'refunded' AND token_lots.remaining > 0))
  AND coalesce(token_lots.expires_at <= $6::timestamptz, false)
  AND NOT EXISTS (SELECT 1 FROM payments WHERE payments.id = token_lots.payment_id AND payments.user_id = token_lots.user_id AND payments.status = 'REFUND_PENDING')`;

/**
 * The lot's status as of $6: held back for a refund, then past its expiry, as above; a lot recorded
 * `refunded` that still has tokens the refund does not take is `active` (they are spendable: the
 * balance counts them, and usage draws on them); else as recorded. So a lot ends as `token_lots`
 * records it: one a lost dispute left to the account, once spent, is `refunded` again (its purchase
 * was); one held back whose holds settled all of it is `spent`, `refunded` or `expired`, as the
 * refund found it. An opening lot (credits from before lots) has no payment, so tokens a refund of
 * such a purchase holds back in it are listed `active` with it.
 */
const STATUS_NOW = `CASE WHEN ${REFUND_TAKES_HELD} THEN 'refunded' WHEN ${PAST_EXPIRY} THEN 'expired'
                         WHEN token_lots.status = 'refunded' AND token_lots.remaining > 0 THEN 'active' ELSE token_lots.status END`;
const REMAINING_NOW = `CASE WHEN (${REFUND_TAKES_HELD}) OR (${PAST_EXPIRY}) THEN ${HELD_NOW} ELSE token_lots.remaining END`;

// $3: one row more than the page, to know whether more follow; $5: a cursor's key as a JSON array
// [priority, expiresAt or null, stream revision, lotId] (the page starts after it), else null; $6: now.
// The index idx_token_lots_draw_order holds the same tuple, so it serves the order and the comparison;
// for active lots, which always have tokens left (`live`), idx_token_lots_live_draw_order holds it
// over those lots only, so spent and expired lots sorting ahead of them are not walked.
function lotsPageSql(live: boolean): string {
  return `
  SELECT lot_id, user_id, source, payment_id, transaction_id, original::text, (${REMAINING_NOW})::text AS remaining, priority,
         to_char(expires_at AT TIME ZONE 'UTC', ${ISO}) AS expires_at, ${STATUS_NOW} AS status,
         to_char(created_at AT TIME ZONE 'UTC', ${ISO}) AS created_at,
         to_char(expires_at AT TIME ZONE 'UTC', ${KEY_TIMESTAMP_FORMAT}) AS key_expires_at, stream_revision::text
    FROM token_lots
   WHERE user_id = $1 ${live ? 'AND token_lots.has_remaining ' : ''}AND ($2::text IS NULL OR (${STATUS_NOW}) = $2)
     AND ($5::jsonb IS NULL OR (priority, ${EXPIRY_ORDER}, stream_revision, lot_id)
                               > (($5::jsonb->>0)::integer, coalesce(($5::jsonb->>1)::timestamptz, 'infinity'::timestamptz), ($5::jsonb->>2)::bigint, $5::jsonb->>3))
   ORDER BY token_lots.priority, ${EXPIRY_ORDER}, token_lots.stream_revision, token_lots.lot_id LIMIT $3 OFFSET $4`;
}

export const LOTS_PAGE_SQL = lotsPageSql(false);
/** LOTS_PAGE_SQL for `status=active`: an active lot has tokens left (a lot recorded active always does, and a refunded one counts as active only while it does). */
export const ACTIVE_LOTS_PAGE_SQL = lotsPageSql(true);

@QueryHandler(GetLotsQuery)
export class GetLotsHandler implements IQueryHandler<GetLotsQuery> {
  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(TOKEN_ACCOUNTS_OPTIONS) private readonly options: TokenAccountsOptions,
  ) {}

  async execute({ userId, status, limit, position }: GetLotsQuery): Promise<LotPage> {
    const scope = `${userId}/${status ?? ''}`;
    const { after, offset } = startOf(LOTS_CURSOR, scope, position);
    const result = await this.pool.query<LotRow>(status === 'active' ? ACTIVE_LOTS_PAGE_SQL : LOTS_PAGE_SQL, [userId, status, limit + 1, offset, after === null ? null : JSON.stringify(after), nowOf(this.options)]);
    return pageOf(result.rows, { shape: LOTS_CURSOR, scope, limit, position }, (lot) => [lot.priority, lot.key_expires_at, lot.stream_revision, lot.lot_id], toView);
  }
}

function toView(row: LotRow): LotView {
  return {
    lotId: row.lot_id,
    userId: row.user_id,
    source: row.source,
    paymentId: row.payment_id,
    transactionId: row.transaction_id,
    original: toSafeInteger(row.original, 'token_lots.original'),
    remaining: toSafeInteger(row.remaining, 'token_lots.remaining'),
    priority: row.priority,
    expiresAt: row.expires_at,
    status: row.status,
    createdAt: row.created_at,
  };
}
