import { invariant } from '../ledger.errors.js';
import { SHORTFALL_COVERED_DESCRIPTION, type ShortfallCovered } from './dispute.events.js';
import { compareDrawOrder, derivedTransactionId, freeOf, isLive, type Draw, type Lot } from './lot.state.js';
import type { TokenAccountState } from './token-account.state.js';

/*
 * Paying off the shortfall of lost disputes (ADR 0024): after a decision that leaves free tokens,
 * and within the expiry sweep at each due hold's end (`sweepExpiries`). Kept apart from the
 * disputes' decisions, which the sweep's module may not import (they import the sweep).
 */

/** Where a cover is decided: whose, when it is recorded, and the transaction id its own is derived from. */
export type CoverPoint = {
  readonly userId: string;
  /** When the cover is recorded (its `occurredAt`). */
  readonly now: Date;
  readonly transactionId?: string;
  /** The instant whose live lots pay it: `now` unless the sweep pays at an earlier hold's expiry. */
  readonly liveAt?: Date;
  /** Keeps apart the covers of one decision; none: the cover decided after the command (`shortfallCoverTransactionId`). */
  readonly purpose?: string;
};

/**
 * What pays off the shortfall once free tokens are on the account (a credit, or a hold that ended):
 * as much of the shortfall as the free tokens of the lots live at `liveAt` cover, in draw-down
 * order. Nothing while the shortfall is 0 or nothing is free.
 */
export function shortfallCovered(state: TokenAccountState, point: CoverPoint): readonly ShortfallCovered[] {
  if (state.shortfall === 0) return [];
  const draws = drawUpTo(freeLots(state, point.liveAt ?? point.now).sort(compareDrawOrder), state.shortfall);
  const amount = sumOf(draws);
  if (amount === 0) return [];
  invariant(point.transactionId !== undefined, 'a decision that frees tokens during a shortfall carries no transaction id');
  return [
    {
      type: 'ShortfallCovered',
      data: {
        userId: point.userId,
        transactionId: point.purpose === undefined ? shortfallCoverTransactionId(point.transactionId) : derivedTransactionId(point.transactionId, point.purpose),
        amount,
        description: SHORTFALL_COVERED_DESCRIPTION,
        balanceAfter: state.balance - amount,
        heldAfter: state.held,
        shortfallAfter: state.shortfall - amount,
        draws,
        occurredAt: point.now.toISOString(),
      },
    },
  ];
}

/**
 * The transaction id of the cover decided with the decision of `transactionId` (a credit's), so its
 * `token_transactions` row too: a repeated purchase, which decides nothing, finds by it the balance
 * its first answer gave.
 */
export function shortfallCoverTransactionId(transactionId: string): string {
  return derivedTransactionId(transactionId, 'shortfall-covered');
}

/** The lots live at `now` with free tokens (held tokens and tokens reserved for a refund stay where they are). */
export function freeLots(state: TokenAccountState, now: Date): Lot[] {
  return [...state.lots.values()].filter((lot) => isLive(lot, now) && freeOf(lot) > 0);
}

/** Up to `amount` from `lots`' free tokens, in the order given. */
export function drawUpTo(lots: readonly Lot[], amount: number): readonly Draw[] {
  const draws: Draw[] = [];
  let rest = amount;
  for (const lot of lots) {
    if (rest === 0) break;
    const taken = Math.min(freeOf(lot), rest);
    draws.push({ lotId: lot.lotId, amount: taken });
    rest -= taken;
  }
  return draws;
}

export function sumOf(draws: readonly Draw[]): number {
  return draws.reduce((total, draw) => total + draw.amount, 0);
}
