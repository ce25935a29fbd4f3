import { randomUUID } from 'node:crypto';
import { Inject } from '@nestjs/common';
import { Query, QueryHandler, type IQueryHandler } from '@nestjs/cqrs';
import { PG_POOL, toSafeInteger } from '@app/database';
import { CommandHandling } from '@app/event-sourcing';
import { decideTokenAccountWithState, freeOf, isLive, tokenAccountDecider, tokenAccountStreamId, type Lot, type TokenAccountState } from '@app/ledger';
import type { Pool } from 'pg';
import { nowOf, TOKEN_ACCOUNTS_OPTIONS, type TokenAccountsOptions } from '../token-accounts.options.js';

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

/**
 * The balance, held and available totals as of now, and the next lot expiry; zeros for a user never
 * seen. From `user_tokens` and `token_lots`, unless a hold or a lot of the account is past its expiry
 * and not yet recorded so (the expiry job records it within its interval; the account's next command
 * with it): then from the account's stream, with the expiries due now decided in memory, as the job
 * would record them. Either way no read shows tokens that no decision made now would count.
 */
export class GetBalanceQuery extends Query<BalanceView> {
  constructor(readonly userId: string) {
    super();
  }
}

// One statement, so totals, the next expiry and whether anything is due come from one snapshot. $2:
// now. Due: a hold recorded active past its expiry (read from the partial index of active holds), or
// a lot with tokens left past its expiry, which is then the next expiry. A lot with tokens left that
// holds not past their expiry and a refund in progress of its purchase reserve whole is neither (as
// `nextExpiryOf` leaves it out) when it is:
// - past its expiry: nothing of it is free to expire (its held tokens stay with the holds, its
//   reserved ones with the refund), so reading it from the stream would change nothing;
// - the lot of a purchase the provider refunded while holds held what was left of it: the refund
//   takes those tokens as the holds give them back, so they never expire.
// A refunded purchase's lot with free tokens (a lost dispute took the refund's part from others)
// expires as any lot does, though `token_lots` records it `refunded` once the refund took a token of
// it: so lots of that status with tokens left are read too. The cheap tests come first: the held sum
// is read only for lots past their expiry or of a refunded purchase. The account's lots with tokens
// left and an expiry are read in expiry order from their own index (idx_token_lots_next_expiry), so
// spent and expired lots, kept for the list, are never read here.
export const BALANCE_SQL = `
  SELECT balance::text, held::text, available::text, shortfall::text,
         (SELECT coalesce(sum(tokens_purchased), 0) FROM payments WHERE user_id = $1 AND status = 'REFUND_PENDING')::text AS reserved_for_refunds,
         (SELECT json_build_object('expiresAt', to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'amount', remaining::text, 'lotId', lot_id, 'due', expires_at <= $2)
            FROM token_lots WHERE user_id = $1 AND has_remaining AND expires_at IS NOT NULL AND status IN ('active', 'refunded')
             AND NOT ((expires_at <= $2 OR (payment_id IS NOT NULL AND EXISTS (SELECT 1 FROM payments WHERE payments.id = token_lots.payment_id AND payments.user_id = $1 AND payments.status = 'REFUNDED')))
                      AND remaining <= (SELECT coalesce(sum((draw->>'amount')::bigint), 0) FROM token_holds, jsonb_array_elements(token_holds.draws) AS draw
                                         WHERE token_holds.user_id = $1 AND token_holds.status = 'active' AND token_holds.expires_at > $2 AND draw->>'lotId' = token_lots.lot_id)
                                     + (SELECT coalesce(sum(tokens_purchased), 0) FROM payments
                                         WHERE payments.id = token_lots.payment_id AND payments.user_id = $1 AND payments.status = 'REFUND_PENDING'))
           ORDER BY expires_at, lot_id LIMIT 1) AS next_expiry,
         EXISTS (SELECT 1 FROM token_holds WHERE user_id = $1 AND status = 'active' AND expires_at <= $2) AS hold_due
    FROM (SELECT $1::uuid AS user_id) AS wanted LEFT JOIN user_tokens USING (user_id)`;

@QueryHandler(GetBalanceQuery)
export class GetBalanceHandler implements IQueryHandler<GetBalanceQuery> {
  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    private readonly commands: CommandHandling,
    @Inject(TOKEN_ACCOUNTS_OPTIONS) private readonly options: TokenAccountsOptions,
  ) {}

  async execute({ userId }: GetBalanceQuery): Promise<BalanceView> {
    const now = nowOf(this.options);
    const result = await this.pool.query<{
      balance: string | null;
      held: string | null;
      available: string | null;
      shortfall: string | null;
      reserved_for_refunds: string;
      next_expiry: { expiresAt: string; amount: string; lotId: string; due: boolean } | null;
      hold_due: boolean;
    }>(BALANCE_SQL, [userId, now]);
    const row = result.rows[0];
    const next = row?.next_expiry ?? null;
    if (row?.hold_due === true || next?.due === true) return this.decidedNow(userId, now);
    const shortfall = toSafeInteger(row?.shortfall ?? '0', 'user_tokens.shortfall');
    const reservedForRefunds = toSafeInteger(row?.reserved_for_refunds ?? '0', 'payments.tokens_purchased');
    return balanceView(userId, {
      balance: toSafeInteger(row?.balance ?? '0', 'user_tokens.balance'),
      held: toSafeInteger(row?.held ?? '0', 'user_tokens.held'),
      reservedForRefunds,
      shortfall,
      nextExpiry: next === null ? null : { expiresAt: next.expiresAt, amount: toSafeInteger(next.amount, 'token_lots.remaining'), lotId: next.lotId },
    });
  }

  /** The account as the expiries due at `now` leave it: the job's own decision, folded in memory, nothing appended. */
  private async decidedNow(userId: string, now: Date): Promise<BalanceView> {
    const { state } = await this.commands.load(tokenAccountStreamId(userId), tokenAccountDecider);
    const swept = decideTokenAccountWithState({ type: 'ExpireCredits', data: { userId, transactionId: randomUUID(), now } }, state).state;
    return balanceView(userId, { balance: swept.balance, held: swept.held, reservedForRefunds: swept.reservedForRefunds, shortfall: swept.shortfall, nextExpiry: nextExpiryOf(swept, now) });
  }
}

function balanceView(
  userId: string,
  totals: { readonly balance: number; readonly held: number; readonly reservedForRefunds: number; readonly shortfall: number; readonly nextExpiry: NextExpiry | null },
): BalanceView {
  const { balance, held, reservedForRefunds, shortfall, nextExpiry } = totals;
  return {
    userId,
    balance,
    held,
    available: availableAfterRefunds(balance - held, reservedForRefunds),
    nextExpiry,
    ...(reservedForRefunds > 0 ? { reservedForRefunds } : {}),
    ...(shortfall > 0 ? { shortfall } : {}),
  };
}

/**
 * The live lot with an expiry that expires first (ties by lot id), as `token_lots` orders its active
 * lots. Two kinds of lot stay in the state with tokens a hold holds and are left out: one past its
 * expiry, and the lot of a purchase refunded while holds held what was left of it (the held part goes
 * to the refund as the holds give it back). `token_lots` records the first `expired` once its free
 * part expired, the second `refunded` once the refund took a token of it; either may be recorded
 * active while holds hold all it has left, which BALANCE_SQL leaves out too. A refunded purchase's
 * lot with free tokens (a lost dispute took the refund's part from other lots) is a lot like any.
 */
export function nextExpiryOf(state: TokenAccountState, now: Date): NextExpiry | null {
  let first: Lot | undefined;
  for (const lot of state.lots.values()) {
    if (lot.expiresAt === null || lot.remaining === 0 || !isLive(lot, now)) continue;
    if (lot.paymentId !== null && state.payments.get(lot.paymentId)?.status === 'REFUNDED' && freeOf(lot) === 0) continue;
    if (first === undefined || lot.expiresAtMs < first.expiresAtMs || (lot.expiresAtMs === first.expiresAtMs && lot.lotId < first.lotId)) first = lot;
  }
  return first === undefined || first.expiresAt === null ? null : { expiresAt: first.expiresAt, amount: first.remaining, lotId: first.lotId };
}

/**
 * Balance less held (`user_tokens.available`) less what refunds in progress reserved, never below 0,
 * as decisions count it (`availableBalance` less `held`). A refund reserves tokens free of holds, so
 * this is 0 only when nothing is left to spend.
 */
export function availableAfterRefunds(balanceLessHeld: number, reservedForRefunds: number): number {
  return Math.max(0, balanceLessHeld - reservedForRefunds);
}
