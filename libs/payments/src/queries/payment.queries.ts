import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { KEY_TIMESTAMP_FORMAT, PG_POOL, pageOf, startOf, toSafeInteger, type CursorShape, type Page, type PagePosition } from '@app/database';
import { LedgerError, type PaymentStatus } from '@app/ledger';
import type { Pool } from 'pg';
import type { PaymentView } from '../payment.view.js';

export type PaymentPage = Page<PaymentView> & { readonly total: number };

/** The payments' keyset: creation time, newest first, then id. A new payment is created now, so it lands before any cursor. */
export const PAYMENTS_CURSOR: CursorShape = { list: 'payments', parts: ['timestamp', 'uuid'] };

/** One payment from the `payments` read model. */
export class GetPaymentQuery extends Query<PaymentView> {
  constructor(readonly paymentId: string) {
    super();
  }
}

/** A user's payments, newest first, optionally of one status, with the total; by offset or after a cursor. */
export class ListPaymentsQuery extends Query<PaymentPage> {
  constructor(
    readonly userId: string,
    readonly limit: number,
    readonly position: PagePosition,
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

type PaymentPageRow = PaymentRow & { key_created_at: string };

const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS ${column}`;
const COLUMNS = `id, user_id, order_id, package_id, status, tokens_purchased::text, amount::text, currency, provider, provider_transaction_id, metadata,
                 ${iso('created_at')}, ${iso('updated_at')}, ${iso('expires_at')}`;

// One statement, so the page and its total come from one snapshot. $2: one row more than the page,
// to know whether more follow; $5/$6: a cursor's creation time and id (the page starts after them),
// else null. The index idx_payments_user_created_at_id serves the order and the comparison.
export const PAYMENTS_PAGE_SQL = `
  SELECT (SELECT count(*) FROM payments WHERE user_id = $1 AND ($4::text IS NULL OR status = $4))::text AS total,
         coalesce((SELECT json_agg(page ORDER BY page.key_created_at DESC, page.id DESC) FROM (
           SELECT ${COLUMNS}, to_char(created_at AT TIME ZONE 'UTC', ${KEY_TIMESTAMP_FORMAT}) AS key_created_at
             FROM payments
            WHERE user_id = $1 AND ($4::text IS NULL OR status = $4) AND ($5::timestamptz IS NULL OR (created_at, id) < ($5::timestamptz, $6::uuid))
            ORDER BY payments.created_at DESC, payments.id DESC LIMIT $2 OFFSET $3) page), '[]'::json) AS rows`;

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

  async execute({ userId, limit, position, status }: ListPaymentsQuery): Promise<PaymentPage> {
    const scope = `${userId}/${status ?? ''}`;
    const { after, offset } = startOf(PAYMENTS_CURSOR, scope, position);
    const result = await this.pool.query<{ total: string; rows: PaymentPageRow[] }>(PAYMENTS_PAGE_SQL, [userId, limit + 1, offset, status ?? null, after?.[0] ?? null, after?.[1] ?? null]);
    const row = result.rows[0];
    return {
      ...pageOf(row?.rows ?? [], { shape: PAYMENTS_CURSOR, scope, limit, position }, (payment) => [payment.key_created_at, payment.id], toView),
      total: row === undefined ? 0 : toSafeInteger(row.total, 'count(payments)'),
    };
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

