import type { Decision } from '../decider.js';
import { invariant } from '../ledger.errors.js';
import type { ShortfallCovered } from './dispute.events.js';
import type { HoldExpired, LotExpired } from './hold.events.js';
import { isHoldActive } from './hold.state.js';
import type { TokensRefunded } from './payment.events.js';
import { refundDescription, type Payment } from './payment.state.js';
import { compareDrawOrder, derivedTransactionId, freeOf, isLive, type Lot } from './lot.state.js';
import { shortfallCovered } from './shortfall.decide.js';
import { evolveTokenAccount, type TokenAccountState } from './token-account.state.js';

/*
 * The sweep every command makes before it decides and again after (ADR 0020): what is due at the
 * command's `now` (holds and lots past their expiry, what a refund held back and a hold gave back)
 * recorded as events in the command's own append.
 */

type Sweep = { readonly userId: string; readonly now: Date; readonly transactionId: string };

/**
 * The expiries due at `now`, as events: holds past their `expiresAt` first (their reservations go
 * back to the lots), then what a refunded purchase's lot got back from ended holds (taken by the
 * refund: `TokensRefunded` with `heldAtRefund`), then the unreserved remainder of every lot past its
 * `expiresAt`. During a shortfall of lost disputes, each hold's tokens pay it off as the hold ends
 * (after what refunds held back take of them): `ShortfallCovered` from the lots live at the hold's
 * `expiresAt`, so a decision never sees free tokens beside a shortfall, and a lot that expired after
 * the hold pays as it would have had the sweep run at the hold's end (ADR 0024). Every command
 * decides these first (and again after itself: a settle or release gives tokens back), so its
 * decision and the events it appends agree on what is held and spendable at `now`. `phase` keeps the
 * derived transaction ids of the two sweeps of one command apart.
 */
export function expiriesDue(state: TokenAccountState, sweep: Sweep, phase: string): readonly Due[] {
  return sweepExpiries(state, sweep, phase).events;
}

type Due = HoldExpired | TokensRefunded | ShortfallCovered | LotExpired;

/** `expiriesDue`'s events with the state after them (see `Decision`). */
export function sweepExpiries(state: TokenAccountState, { userId, now, transactionId }: Sweep, phase: string): Decision<Due, TokenAccountState> {
  if (!anyExpiryDue(state, now)) return { events: NOTHING_DUE, state };
  const events: Due[] = [];
  let current = state;
  const apply = (event: Due) => {
    events.push(event);
    current = evolveTokenAccount(current, event);
  };
  const occurredAt = now.toISOString();
  const dueHolds = [...state.holds.values()].filter((hold) => !isHoldActive(hold, now));
  dueHolds.sort((left, right) => left.expiresAtMs - right.expiresAtMs || compareText(left.holdId, right.holdId));
  // One payment at a time, each on the state the previous take left: payments bought before lots
  // share the opening lot, and what a hold gives back there goes to them in payment id order. Taken
  // at each hold's end too during a shortfall (`afterHold`, which keeps those takes' ids apart).
  const takeHeldBack = (afterHold?: string) => {
    for (const paymentId of [...current.refundsHeldBack.keys()].sort(compareText)) {
      const due = heldBackDueOf(current, paymentId);
      if (due === undefined) continue;
      const { lot, payment, amount } = due;
      apply({
        type: 'TokensRefunded',
        data: {
          userId,
          transactionId: derivedTransactionId(transactionId, afterHold === undefined ? `refund-remainder:${payment.paymentId}:${phase}` : `refund-remainder:${payment.paymentId}:${afterHold}:${phase}`),
          paymentId: payment.paymentId,
          amount,
          description: refundDescription(payment),
          balanceAfter: current.balance - amount,
          occurredAt,
          draws: [{ lotId: lot.lotId, amount }],
          heldAfter: current.held,
          heldAtRefund: true,
        },
      });
    }
  };
  for (const hold of dueHolds) {
    const data = { userId, holdId: hold.holdId, amount: hold.amount, expiresAt: hold.expiresAt, balanceAfter: current.balance, heldAfter: current.held - hold.amount, occurredAt };
    apply({ type: 'HoldExpired', data });
    if (current.shortfall === 0) continue;
    takeHeldBack(hold.holdId);
    for (const cover of shortfallCovered(current, { userId, now, transactionId, liveAt: new Date(hold.expiresAtMs), purpose: `shortfall-covered:${hold.holdId}:${phase}` })) apply(cover);
  }
  takeHeldBack();
  const dueLots = [...current.lots.values()].filter((lot) => !isLive(lot, now) && freeOf(lot) > 0).sort(compareDrawOrder);
  for (const lot of dueLots) {
    const amount = freeOf(lot);
    invariant(lot.expiresAt !== null, `lot ${lot.lotId} without expiry is due`);
    apply({
      type: 'LotExpired',
      data: {
        userId,
        transactionId: derivedTransactionId(transactionId, `lot-expired:${lot.lotId}:${phase}`),
        lotId: lot.lotId,
        amount,
        expiresAt: lot.expiresAt,
        draws: [{ lotId: lot.lotId, amount }],
        balanceAfter: current.balance - amount,
        heldAfter: current.held,
        occurredAt,
      },
    });
  }
  return { events, state: current };
}

const NOTHING_DUE: readonly Due[] = Object.freeze([]);

/**
 * Whether `expiriesDue` finds anything, without its lists and sorts: the common case of every
 * command, which sweeps twice. With no hold due the lots it would look at are the state's own.
 */
function anyExpiryDue(state: TokenAccountState, now: Date): boolean {
  return (
    state.holds.some((hold) => !isHoldActive(hold, now)) ||
    state.lots.some((lot) => !isLive(lot, now) && freeOf(lot) > 0) ||
    (state.refundsHeldBack.size > 0 && state.refundsHeldBack.some((_heldBack, paymentId) => heldBackDueOf(state, paymentId) !== undefined))
  );
}

/**
 * What the refund of `paymentId` held back (`refundsHeldBack`) and can take now: the free tokens a
 * hold's end gave back to the purchase's lot, up to what is still held back. The lot's free tokens
 * are 0 from the refund on until then (the refund took them), so they are the held part coming back.
 */
function heldBackDueOf(state: TokenAccountState, paymentId: string): { readonly lot: Lot; readonly payment: Payment; readonly amount: number } | undefined {
  const heldBack = state.refundsHeldBack.get(paymentId);
  const lot = heldBack === undefined ? undefined : state.lots.get(heldBack.lotId);
  const payment = state.payments.get(paymentId);
  if (heldBack === undefined || lot === undefined || payment === undefined) return undefined;
  const amount = Math.min(heldBack.amount, freeOf(lot));
  return amount > 0 ? { lot, payment, amount } : undefined;
}

function compareText(left: string, right: string): number {
  // Stryker disable next-line ConditionalExpression: `false` is equivalent, the ids sorted are keys of one map and never equal (`true` goes out with it: "the order of expiries due together" kills it)
  if (left === right) return 0;
  // Stryker disable next-line EqualityOperator: equivalent, `<=` differs from `<` only for equal ids, answered above
  return left < right ? -1 : 1;
}
