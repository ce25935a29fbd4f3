import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { PG_POOL, toSafeInteger } from '@app/database';
import { LedgerError, type PaymentStatus } from '@app/ledger';
import type { Pool } from 'pg';
import type { PaymentView } from '../payment.view.js';

export type PaymentPage = { readonly data: readonly PaymentView[]; readonly total: number; readonly limit: number; readonly offset: number };

/** One payment from the `payments` read model. */
export class GetPaymentQuery extends Query<PaymentView> {
  constructor(readonly paymentId: string) {
    super();
  }
}

/** A user's payments, newest first, optionally of one status, with the total. */
export class ListPaymentsQuery extends Query<PaymentPage> {
  constructor(
    readonly userId: string,
    readonly limit: number,
    readonly offset: number,
    readonly status: PaymentStatus | undefined,
  ) {
    super();
  }
}

type PaymentRow = {
  id: string;
  user_id: string;
  order_id: string;
  package_id: string;
  status: PaymentStatus;
  tokens_purchased: string;
  amount: string;
  currency: string;
  provider: string;
  provider_transaction_id: string | null;
  metadata: Record<string, string | number>;
  created_at: string;
  updated_at: string;
  expires_at: string;
};

const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS ${column}`;
const COLUMNS = `id, user_id, order_id, package_id, status, tokens_purchased::text, amount::text, currency, provider, provider_transaction_id, metadata,
                 ${iso('created_at')}, ${iso('updated_at')}, ${iso('expires_at')}`;

// One statement, so the page and its total come from one snapshot.
const PAGE_SQL = `
  WITH mine AS (SELECT * FROM payments WHERE user_id = $1 AND ($4::text IS NULL OR status = $4))
  SELECT (SELECT count(*) FROM mine)::text AS total,
         coalesce((SELECT json_agg(page ORDER BY page.created_at DESC, page.id) FROM (SELECT ${COLUMNS} FROM mine ORDER BY created_at DESC, id LIMIT $2 OFFSET $3) page), '[]'::json) AS rows`;

@QueryHandler(GetPaymentQuery)
export class GetPaymentHandler implements IQueryHandler<GetPaymentQuery> {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  async execute({ paymentId }: GetPaymentQuery): Promise<PaymentView> {
    const result = await this.pool.query<PaymentRow>(`SELECT ${COLUMNS} FROM payments WHERE id = $1`, [paymentId]);
    const row = result.rows[0];
    if (row === undefined) throw new LedgerError('PAYMENT_NOT_FOUND', `payment ${paymentId} does not exist`, { paymentId });
    return toView(row);
  }
}

@QueryHandler(ListPaymentsQuery)
export class ListPaymentsHandler implements IQueryHandler<ListPaymentsQuery> {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  async execute({ userId, limit, offset, status }: ListPaymentsQuery): Promise<PaymentPage> {
    const result = await this.pool.query<{ total: string; rows: PaymentRow[] }>(PAGE_SQL, [userId, limit, offset, status ?? null]);
    const row = result.rows[0];
    return { data: (row?.rows ?? []).map(toView), total: row === undefined ? 0 : toSafeInteger(row.total, 'count(payments)'), limit, offset };
  }
}

function toView(row: PaymentRow): PaymentView {
  return {
    paymentId: row.id,
    userId: row.user_id,
    orderId: row.order_id,
    packageId: row.package_id,
    status: row.status,
    tokens: toSafeInteger(row.tokens_purchased, 'payments.tokens_purchased'),
    amount: toSafeInteger(row.amount, 'payments.amount'),
    currency: row.currency,
    provider: row.provider,
    providerTransactionId: row.provider_transaction_id,
    metadata: row.metadata,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    expiresAt: row.expires_at,
  };
}

