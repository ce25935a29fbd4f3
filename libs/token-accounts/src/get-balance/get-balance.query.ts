import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { PG_POOL, toSafeInteger } from '@app/database';
import type { Pool } from 'pg';

/** The next lot remainder due to expire: when, how many tokens, which lot. */
export type NextExpiry = { readonly expiresAt: string; readonly amount: number; readonly lotId: string };

/**
 * `available` is what usage and holds can take now: the balance less what holds set aside and what
 * refunds in progress reserved (`reservedForRefunds`, present only while a refund is in progress,
 * ADR 0016). `shortfall` only while the account owes tokens of lost payment disputes (ADR 0024).
 */
export type BalanceView = {
  readonly userId: string;
  readonly balance: number;
  readonly held: number;
  readonly available: number;
  readonly nextExpiry: NextExpiry | null;
  readonly reservedForRefunds?: number;
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
         (SELECT coalesce(sum(tokens_purchased), 0) FROM payments WHERE user_id = $1 AND status = 'REFUND_PENDING')::text AS reserved_for_refunds,
         (SELECT json_build_object('expiresAt', to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'amount', remaining::text, 'lotId', lot_id)
            FROM token_lots WHERE user_id = $1 AND status = 'active' AND expires_at IS NOT NULL ORDER BY expires_at, lot_id LIMIT 1) AS next_expiry
    FROM (SELECT $1::uuid AS user_id) AS wanted LEFT JOIN user_tokens USING (user_id)`;

@QueryHandler(GetBalanceQuery)
export class GetBalanceHandler implements IQueryHandler<GetBalanceQuery> {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  async execute({ userId }: GetBalanceQuery): Promise<BalanceView> {
    const result = await this.pool.query<{
      balance: string | null;
      held: string | null;
      available: string | null;
      shortfall: string | null;
      reserved_for_refunds: string;
      next_expiry: { expiresAt: string; amount: string; lotId: string } | null;
    }>(BALANCE_SQL, [userId]);
    const row = result.rows[0];
    const next = row?.next_expiry ?? null;
    const shortfall = toSafeInteger(row?.shortfall ?? '0', 'user_tokens.shortfall');
    const reservedForRefunds = toSafeInteger(row?.reserved_for_refunds ?? '0', 'payments.tokens_purchased');
    return {
      userId,
      balance: toSafeInteger(row?.balance ?? '0', 'user_tokens.balance'),
      held: toSafeInteger(row?.held ?? '0', 'user_tokens.held'),
      available: availableAfterRefunds(toSafeInteger(row?.available ?? '0', 'user_tokens.available'), reservedForRefunds),
      nextExpiry: next === null ? null : { expiresAt: next.expiresAt, amount: toSafeInteger(next.amount, 'token_lots.remaining'), lotId: next.lotId },
      ...(reservedForRefunds > 0 ? { reservedForRefunds } : {}),
      ...(shortfall > 0 ? { shortfall } : {}),
    };
  }
}

/**
 * Balance less held (`user_tokens.available`) less what refunds in progress reserved, never below 0,
 * as decisions count it (`availableBalance` less `held`). A refund reserves tokens free of holds, so
 * this is 0 only when nothing is left to spend.
 */
export function availableAfterRefunds(balanceLessHeld: number, reservedForRefunds: number): number {
  return Math.max(0, balanceLessHeld - reservedForRefunds);
}
