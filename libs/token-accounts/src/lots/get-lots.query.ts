import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { PG_POOL, toSafeInteger } from '@app/database';
import type { LotSource } from '@app/ledger';
import type { Pool } from 'pg';

export const LOT_STATUSES = ['active', 'spent', 'expired', 'voided', 'refunded'] as const;
export type LotStatus = (typeof LOT_STATUSES)[number];

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

export type LotPage = { readonly data: readonly LotView[]; readonly limit: number; readonly offset: number };

/** A user's credit lots from `token_lots`, in draw-down order (priority, earliest expiry, oldest), optionally of one status. */
export class GetLotsQuery extends Query<LotPage> {
  constructor(
    readonly userId: string,
    readonly status: LotStatus | null,
    readonly limit: number,
    readonly offset: number,
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
};

const ISO = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;

@QueryHandler(GetLotsQuery)
export class GetLotsHandler implements IQueryHandler<GetLotsQuery> {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  async execute({ userId, status, limit, offset }: GetLotsQuery): Promise<LotPage> {
    const result = await this.pool.query<LotRow>(
      `SELECT lot_id, user_id, source, payment_id, transaction_id, original::text, remaining::text, priority,
              to_char(expires_at AT TIME ZONE 'UTC', ${ISO}) AS expires_at, status, to_char(created_at AT TIME ZONE 'UTC', ${ISO}) AS created_at
         FROM token_lots WHERE user_id = $1 AND ($2::text IS NULL OR status = $2)
        ORDER BY priority, expires_at NULLS LAST, created_at, lot_id LIMIT $3 OFFSET $4`,
      [userId, status, limit, offset],
    );
    return { data: result.rows.map(toView), limit, offset };
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
