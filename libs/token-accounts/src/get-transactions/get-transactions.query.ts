import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { PG_POOL, pageOf, startOf, toSafeInteger, type CursorShape, type Page, type PagePosition } from '@app/database';
import type { Pool } from 'pg';
import type { Metadata } from '@app/ledger';
import type { TransactionType, TransactionView } from '@app/projections';

export type TransactionPage = Page<TransactionView> & { readonly total: number };

/** The history's keyset: the stream revision, newest first. New rows have higher revisions, so they never land after a cursor. */
export const TRANSACTIONS_CURSOR: CursorShape = { list: 'transactions', parts: ['revision'] };

/** A user's history, newest first (by ledger order), with the total count; by offset or after a cursor. */
export class GetTransactionsQuery extends Query<TransactionPage> {
  constructor(
    readonly userId: string,
    readonly limit: number,
    readonly position: PagePosition,
  ) {
    super();
  }
}

type TransactionRow = {
  id: string;
  user_id: string;
  amount: string;
  transaction_type: TransactionType;
  description: string | null;
  payment_id: string | null;
  balance_after: string;
  created_at: string;
  hold_id: string | null;
  lot_id: string | null;
  draws: readonly { lotId: string; amount: number }[] | null;
  stream_revision: string;
  metadata: Metadata | null;
};

// One statement, so the page and the total come from one snapshot. The total is the projection's
// per-user count, not a count(*) over the whole history. $2: one row more than the page, to know
// whether more follow; $4: the revision of a cursor (the page starts below it), else null. The
// unique index on (user_id, stream_revision) serves the order and the cursor's comparison.
export const TRANSACTIONS_PAGE_SQL = `
  SELECT coalesce((SELECT transaction_count FROM user_tokens WHERE user_id = $1), 0)::text AS total,
         coalesce((
           SELECT json_agg(page ORDER BY page.stream_revision::bigint DESC) FROM (
             SELECT id, user_id, amount::text, transaction_type, description, payment_id, balance_after::text,
                    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS created_at, stream_revision::text, hold_id, lot_id, draws, metadata
               FROM token_transactions WHERE user_id = $1 AND ($4::bigint IS NULL OR stream_revision < $4::bigint)
              ORDER BY token_transactions.stream_revision DESC LIMIT $2 OFFSET $3
           ) page
         ), '[]'::json) AS rows`;

@QueryHandler(GetTransactionsQuery)
export class GetTransactionsHandler implements IQueryHandler<GetTransactionsQuery> {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  async execute({ userId, limit, position }: GetTransactionsQuery): Promise<TransactionPage> {
    const request = { shape: TRANSACTIONS_CURSOR, scope: userId, limit, position };
    const { after, offset } = startOf(TRANSACTIONS_CURSOR, userId, position);
    const result = await this.pool.query<{ total: string; rows: TransactionRow[] }>(TRANSACTIONS_PAGE_SQL, [userId, limit + 1, offset, after?.[0] ?? null]);
    const row = result.rows[0];
    return {
      ...pageOf(row?.rows ?? [], request, (transaction) => [transaction.stream_revision], toView),
      total: row === undefined ? 0 : toSafeInteger(row.total, 'user_tokens.transaction_count'),
    };
  }
}

function toView(row: TransactionRow): TransactionView {
  return {
    id: row.id,
    userId: row.user_id,
    amount: toSafeInteger(row.amount, 'token_transactions.amount'),
    transactionType: row.transaction_type,
    description: row.description,
    paymentId: row.payment_id,
    balanceAfter: toSafeInteger(row.balance_after, 'token_transactions.balance_after'),
    createdAt: row.created_at,
    holdId: row.hold_id,
    lotId: row.lot_id,
    draws: row.draws,
    metadata: row.metadata,
  };
}
