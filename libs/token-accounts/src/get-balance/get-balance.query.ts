import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { PG_POOL, toSafeInteger } from '@app/database';
import type { Pool } from 'pg';

/** The next lot remainder due to expire: when, how many tokens, which lot. */
export type NextExpiry = { readonly expiresAt: string; readonly amount: number; readonly lotId: string };

/** `shortfall` only while the account owes tokens of lost payment disputes (ADR 0024); absent otherwise. */
export type BalanceView = {
  readonly userId: string;
  readonly balance: number;
  readonly held: number;
  readonly available: number;
  readonly nextExpiry: NextExpiry | null;
  readonly shortfall?: number;
};

/** The balance, held and available totals from `user_tokens`, and the next lot expiry from `token_lots`; zeros for a user never seen. */
export class GetBalanceQuery extends Query<BalanceView> {
  constructor(readonly userId: string) {
    super();
  }
}

// One statement, so totals and the next expiry come from one snapshot.
const BALANCE_SQL = `
  SELECT balance::text, held::text, available::text, shortfall::text,
         (SELECT json_build_object('expiresAt', to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'amount', remaining::text, 'lotId', lot_id)
            FROM token_lots WHERE user_id = $1 AND status = 'active' AND expires_at IS NOT NULL ORDER BY expires_at, lot_id LIMIT 1) AS next_expiry
    FROM (SELECT $1::uuid AS user_id) AS wanted LEFT JOIN user_tokens USING (user_id)`;

@QueryHandler(GetBalanceQuery)
export class GetBalanceHandler implements IQueryHandler<GetBalanceQuery> {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  async execute({ userId }: GetBalanceQuery): Promise<BalanceView> {
    const result = await this.pool.query<{ balance: string | null; held: string | null; available: string | null; shortfall: string | null; next_expiry: { expiresAt: string; amount: string; lotId: string } | null }>(
      BALANCE_SQL,
      [userId],
    );
    const row = result.rows[0];
    const next = row?.next_expiry ?? null;
    const shortfall = toSafeInteger(row?.shortfall ?? '0', 'user_tokens.shortfall');
    return {
      userId,
      balance: toSafeInteger(row?.balance ?? '0', 'user_tokens.balance'),
      held: toSafeInteger(row?.held ?? '0', 'user_tokens.held'),
      available: toSafeInteger(row?.available ?? '0', 'user_tokens.available'),
      nextExpiry: next === null ? null : { expiresAt: next.expiresAt, amount: toSafeInteger(next.amount, 'token_lots.remaining'), lotId: next.lotId },
      ...(shortfall > 0 ? { shortfall } : {}),
    };
  }
}
