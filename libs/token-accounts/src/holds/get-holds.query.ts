import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { PG_POOL, pageOf, startOf, toSafeInteger, type CursorShape, type Page, type PagePosition } from '@app/database';
import { LedgerError, type Draw, type Metadata } from '@app/ledger';
import type { Pool } from 'pg';
import { nowOf, TOKEN_ACCOUNTS_OPTIONS, type TokenAccountsOptions } from '../token-accounts.options.js';

export const HOLD_STATUSES = ['active', 'settled', 'released', 'expired'] as const;
export type HoldStatus = (typeof HOLD_STATUSES)[number];

export type HoldView = {
  readonly holdId: string;
  readonly userId: string;
  readonly amount: number;
  readonly description: string | null;
  readonly status: HoldStatus;
  readonly expiresAt: string;
  readonly draws: readonly Draw[];
  readonly settledAmount: number | null;
  /** The usage transaction of its settle. */
  readonly transactionId: string | null;
  readonly createdAt: string;
  /** A settle's or release's time; an expired hold's `expiresAt` (it stopped counting then, however late its expiry was recorded). */
  readonly endedAt: string | null;
  /** The caller's metadata of the hold; null when none was given. */
  readonly metadata: Metadata | null;
};

export type HoldPage = Page<HoldView>;

/** The holds' keyset: the revision of the hold's `TokensHeld`, newest first (fixed for the hold's life; new holds come before any cursor). */
export const HOLDS_CURSOR: CursorShape = { list: 'holds', parts: ['revision'] };

/** A user's holds from `token_holds` as of now (one past its expiry is expired, recorded or not), newest first, optionally of one status; by offset or after a cursor. */
export class GetHoldsQuery extends Query<HoldPage> {
  constructor(
    readonly userId: string,
    readonly status: HoldStatus | null,
    readonly limit: number,
    readonly position: PagePosition,
  ) {
    super();
  }
}

type HoldRow = {
  hold_id: string;
  user_id: string;
  amount: string;
  description: string | null;
  status: HoldStatus;
  expires_at: string;
  draws: readonly Draw[];
  settled_amount: string | null;
  transaction_id: string | null;
  created_at: string;
  ended_at: string | null;
  stream_revision: string;
  metadata: Metadata | null;
};

const ISO = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;

/** A hold past its expiry whose `HoldExpired` is not recorded yet: expired as of $6 all the same. */
const EXPIRED_UNRECORDED = `status = 'active' AND expires_at <= $6::timestamptz`;

// $3: one row more than the page, to know whether more follow; $5: the revision of a cursor (the
// page starts below it), else null; $6: now. A hold recorded active past its expiry is shown as it is
// then, expired at its expiresAt (the expiry job records it within its interval). The index on
// (user_id, stream_revision) serves the order and the cursor's comparison, and a status filters along
// it; for `active` (the status bound as a value, so the plan is made for it) the partial index of
// active holds serves them alone.
export const HOLDS_PAGE_SQL = `
  SELECT hold_id, user_id, amount::text, description, CASE WHEN ${EXPIRED_UNRECORDED} THEN 'expired' ELSE status END AS status,
         to_char(expires_at AT TIME ZONE 'UTC', ${ISO}) AS expires_at, draws, settled_amount::text, transaction_id,
         to_char(created_at AT TIME ZONE 'UTC', ${ISO}) AS created_at,
         to_char(CASE WHEN ${EXPIRED_UNRECORDED} THEN expires_at ELSE ended_at END AT TIME ZONE 'UTC', ${ISO}) AS ended_at, stream_revision::text, metadata
    FROM token_holds
   WHERE user_id = $1
     AND ($2::text IS NULL OR (status = $2 AND NOT (${EXPIRED_UNRECORDED})) OR ($2 = 'expired' AND ${EXPIRED_UNRECORDED}))
     AND ($5::bigint IS NULL OR stream_revision < $5::bigint)
   ORDER BY token_holds.stream_revision DESC LIMIT $3 OFFSET $4`;

@QueryHandler(GetHoldsQuery)
export class GetHoldsHandler implements IQueryHandler<GetHoldsQuery> {
  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(TOKEN_ACCOUNTS_OPTIONS) private readonly options: TokenAccountsOptions,
  ) {}

  async execute({ userId, status, limit, position }: GetHoldsQuery): Promise<HoldPage> {
    const scope = `${userId}/${status ?? ''}`;
    const { after, offset } = startOf(HOLDS_CURSOR, scope, position);
    const result = await this.pool.query<HoldRow>(HOLDS_PAGE_SQL, [userId, status, limit + 1, offset, after?.[0] ?? null, nowOf(this.options)]);
    return pageOf(result.rows, { shape: HOLDS_CURSOR, scope, limit, position }, (hold) => [hold.stream_revision], toView);
  }
}

/** One hold of a user, as the list shows it as of now; HOLD_NOT_FOUND when the account never had it. */
export class GetHoldQuery extends Query<HoldView> {
  constructor(
    readonly userId: string,
    readonly holdId: string,
  ) {
    super();
  }
}

// $3: now. The list's columns and as-of-now status (a hold recorded active past its expiry is expired at its expiresAt); by its key.
export const HOLD_SQL = `
  SELECT hold_id, user_id, amount::text, description, CASE WHEN ${EXPIRED_UNRECORDED.replaceAll('$6', '$3')} THEN 'expired' ELSE status END AS status,
         to_char(expires_at AT TIME ZONE 'UTC', ${ISO}) AS expires_at, draws, settled_amount::text, transaction_id,
         to_char(created_at AT TIME ZONE 'UTC', ${ISO}) AS created_at,
         to_char(CASE WHEN ${EXPIRED_UNRECORDED.replaceAll('$6', '$3')} THEN expires_at ELSE ended_at END AT TIME ZONE 'UTC', ${ISO}) AS ended_at, stream_revision::text, metadata
    FROM token_holds
   WHERE hold_id = $2 AND user_id = $1`;

@QueryHandler(GetHoldQuery)
export class GetHoldHandler implements IQueryHandler<GetHoldQuery> {
  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(TOKEN_ACCOUNTS_OPTIONS) private readonly options: TokenAccountsOptions,
  ) {}

  async execute({ userId, holdId }: GetHoldQuery): Promise<HoldView> {
    const row = (await this.pool.query<HoldRow>(HOLD_SQL, [userId, holdId, nowOf(this.options)])).rows[0];
    if (row === undefined) throw new LedgerError('HOLD_NOT_FOUND', `this account has no hold ${holdId}`, { holdId });
    return toView(row);
  }
}

function toView(row: HoldRow): HoldView {
  return {
    holdId: row.hold_id,
    userId: row.user_id,
    amount: toSafeInteger(row.amount, 'token_holds.amount'),
    description: row.description,
    status: row.status,
    expiresAt: row.expires_at,
    draws: row.draws,
    settledAmount: row.settled_amount === null ? null : toSafeInteger(row.settled_amount, 'token_holds.settled_amount'),
    transactionId: row.transaction_id,
    createdAt: row.created_at,
    endedAt: row.ended_at,
    metadata: row.metadata,
  };
}
