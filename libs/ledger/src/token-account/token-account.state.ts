import { Map as ImmutableMap } from 'immutable';
import { invariant, LedgerInvariantViolation } from '../ledger.errors.js';
import { TOKEN_ACCOUNT_EVENT_TYPES, type TokenAccountEvent, type TokensPurchased } from './token-account.events.js';
import { areLotTerms, type Payment } from './payment.state.js';
import { EndedHolds, type Hold } from './hold.state.js';
import { isSettleWithDebit } from './hold.events.js';
import type { Draw, Lot } from './lot.state.js';
import type { Dispute } from './dispute.state.js';
import { creditLot, debitLots, endHold, evolveHold, heldBackIn, heldIn, holdOf, reserveInLot, withVoidedGrant, type LedgerMovement } from './lot.evolve.js';
import { freeOf, OPENING_LOT_ID } from './lot.state.js';

export type Purchase = TokensPurchased['data'];

export type TokenAccountState = {
  readonly balance: number;
  /**
   * Every credited payment by its id: the source of exact idempotency for `AddTokens`. A persistent
   * map, so that folding a long stream stays linear and earlier states are never changed.
   */
  readonly purchases: ImmutableMap<string, Purchase>;
  /** Every payment initiated on this account by its id, with its status (persistent too). */
  readonly payments: ImmutableMap<string, Payment>;
  /** Tokens of REFUND_PENDING payments, reserved in their purchases' lots: part of the balance that nothing may spend. */
  readonly reservedForRefunds: number;
  /** Tokens set aside by the holds in `holds` (active, or expired with no `HoldExpired` yet). */
  readonly held: number;
  /**
   * The lots with tokens left or reserved, by id; spent and expired lots leave. Their remainders sum
   * to `balance`, their reservations to `held + reservedForRefunds`.
   */
  readonly lots: ImmutableMap<string, Lot>;
  /** Lots created so far: the next lot's `sequence`. */
  readonly lotsCreated: number;
  /** Holds not yet ended by an event, by id. Their amounts sum to `held`. */
  readonly holds: ImmutableMap<string, Hold>;
  /** How the newest ended holds ended (at most ENDED_HOLDS_REMEMBERED_MAX, oldest first). */
  readonly endedHolds: EndedHolds;
  /** The lot ids of the newest voided grants (at most VOIDED_GRANTS_REMEMBERED_MAX, oldest first): a void leaves nothing of its lot in `lots`. */
  readonly voidedGrants: readonly string[];
  /** Every dispute of this account's payments, by the provider's dispute id. */
  readonly disputes: ImmutableMap<string, Dispute>;
  /**
   * Tokens lost disputes took back that the account no longer held (ADR 0024). While above 0 no
   * usage or hold is accepted, and every decision that leaves free tokens pays it off first.
   */
  readonly shortfall: number;
  /**
   * By payment id, what refunds the provider made on their own left to take when holds give it
   * back: the part of the purchase's lot that holds held at the refund (`PaymentRefunded.heldBack`).
   * The sweep of every command takes it as the lot gets free tokens (`expiriesDue`); an entry ends
   * when it is all taken, when its lot ends, or when a dispute of the payment is lost (the dispute
   * owes it). Usually empty.
   */
  readonly refundsHeldBack: ImmutableMap<string, RefundHeldBack>;
  /**
   * The latest `occurredAt` of the stream's events, in epoch milliseconds (0 before the first). No
   * decision on the stream is timed before it (`decideTokenAccount`), so a retried decision or a
   * slower clock never records an event earlier than the one before it.
   */
  readonly lastOccurredAtMs: number;
};

/** What a refund left to take from the purchase's lot `lotId` when the holds that held it give it back. */
export type RefundHeldBack = { readonly lotId: string; readonly amount: number };

export const initialTokenAccountState: TokenAccountState = {
  balance: 0,
  purchases: ImmutableMap(),
  payments: ImmutableMap(),
  reservedForRefunds: 0,
  held: 0,
  lots: ImmutableMap(),
  lotsCreated: 0,
  holds: ImmutableMap(),
  endedHolds: EndedHolds.none,
  voidedGrants: [],
  disputes: ImmutableMap(),
  shortfall: 0,
  refundsHeldBack: ImmutableMap(),
  lastOccurredAtMs: 0,
};

/**
 * A hold ends by its expiry at or after its `expiresAt`, and by a settle or release before it: a
 * decision made at that instant or later finds it expired (`isHoldActive`), and the sweep every
 * command makes first records that expiry. An event that says otherwise was not decided here.
 */
function assertHoldEndTimely(hold: Pick<Hold, 'holdId' | 'expiresAtMs'>, occurredAtMs: number, end: 'settled' | 'released' | 'expired'): void {
  const timely = end === 'expired' ? hold.expiresAtMs <= occurredAtMs : occurredAtMs < hold.expiresAtMs;
  invariant(timely, `hold ${hold.holdId} ${end} ${end === 'expired' ? 'before' : 'at or after'} its expiry`);
}

/** What a refund may take back and usage may reach: the balance less the tokens reserved for refunds in progress (never below 0). */
export function availableBalance(state: TokenAccountState): number {
  return Math.max(0, state.balance - state.reservedForRefunds);
}

export function evolveTokenAccount(state: TokenAccountState, event: TokenAccountEvent): TokenAccountState {
  // First, whatever its data (none, or no time): a stream the ledger cannot fold is named for what it holds.
  if (!TOKEN_ACCOUNT_EVENT_TYPES.has(event.type)) throw new LedgerInvariantViolation(`unknown token account event ${JSON.stringify(event)}`);
  const occurredAtMs = Date.parse(event.data.occurredAt);
  // Named here: a rule below that compares times would otherwise fail on NaN, naming that rule instead.
  if (Number.isNaN(occurredAtMs)) throw new LedgerInvariantViolation(`${event.type} has an occurredAt that is not a time: ${JSON.stringify(event.data.occurredAt)}`);
  const evolved = evolveByType(state, event, occurredAtMs);
  // The latest, not the last: streams written before decisions kept to it may step back in time.
  return occurredAtMs > evolved.lastOccurredAtMs ? { ...evolved, lastOccurredAtMs: occurredAtMs } : evolved;
}

/** `occurredAtMs`: the event's `occurredAt` in epoch milliseconds, parsed once. */
function evolveByType(state: TokenAccountState, event: TokenAccountEvent, occurredAtMs: number): TokenAccountState {
  switch (event.type) {
    case 'TokensPurchased': {
      invariant(!state.purchases.has(event.data.paymentId), `payment ${event.data.paymentId} credited twice`);
      const credited = creditLot(state, movement(event.data, event.data.amount), 'purchase', event.data.lot, event.data.paymentId);
      return { ...credited, purchases: state.purchases.set(event.data.paymentId, event.data) };
    }
    case 'TokensUsed': {
      invariant(event.data.holdId === undefined || state.endedHolds.get(event.data.holdId) === 'settled', `usage settles hold ${String(event.data.holdId)} that was not just settled`);
      return debitLots(state, movement(event.data, -event.data.amount), event.data.draws);
    }
    case 'TokensRefunded': {
      const payment = state.payments.get(event.data.paymentId);
      invariant(payment?.status === 'REFUNDED', `tokens refunded for payment ${event.data.paymentId} that is not refunded`);
      if (event.data.heldAtRefund !== true) return debitLots(state, movement(event.data, -event.data.amount), event.data.draws);
      // Taken later, when a hold gave them back: from the purchase's lot, within what the refund left to take there.
      const heldBack = state.refundsHeldBack.get(payment.paymentId);
      invariant(
        heldBack !== undefined && event.data.amount <= heldBack.amount && event.data.draws !== undefined && drawsOnlyFrom(event.data.draws, heldBack.lotId),
        `refund of payment ${payment.paymentId} takes ${event.data.amount} tokens it did not hold back`,
      );
      const rest = heldBack.amount - event.data.amount;
      const taken = { ...state, refundsHeldBack: rest === 0 ? state.refundsHeldBack.delete(payment.paymentId) : state.refundsHeldBack.set(payment.paymentId, { ...heldBack, amount: rest }) };
      const debited = debitLots(taken, movement(event.data, -event.data.amount), event.data.draws);
      return withPayment(debited, { ...payment, tokensDebited: (payment.tokensDebited ?? 0) + event.data.amount });
    }
    case 'TokensAdjusted': {
      // Stryker disable next-line ConditionalExpression: equivalent, a change of 0 is refused by creditLot and debitLots too (the same LedgerInvariantViolation); this names it in the log.
      invariant(event.data.amount !== 0, 'an adjustment of 0 tokens');
      const change = movement(event.data, event.data.amount);
      // Stryker disable next-line EqualityOperator: `>=` differs only at 0, refused just above.
      return event.data.amount > 0 ? creditLot(state, change, 'adjustment', event.data.lot, null) : debitLots(state, change, event.data.draws);
    }
    case 'TokensGranted':
      return creditLot(state, movement(event.data, event.data.amount), 'grant', event.data.lot, null);
    case 'GrantVoided': {
      const lot = state.lots.get(event.data.lotId);
      invariant(lot?.source === 'grant', `void of lot ${event.data.lotId} that is not a grant`);
      // A void takes the grant's whole remainder, and only while no hold has set part of it aside (LOT_HELD).
      invariant(event.data.amount === lot.remaining && lot.reserved === 0, `void of lot ${lot.lotId} takes ${event.data.amount} of its ${lot.remaining} tokens, ${lot.reserved} of them held`);
      invariant(drawsOnlyFrom(event.data.draws, event.data.lotId), `void of lot ${event.data.lotId} draws from other lots`);
      const debited = debitLots(state, movement(event.data, -event.data.amount), event.data.draws);
      return { ...debited, voidedGrants: withVoidedGrant(state.voidedGrants, event.data.lotId) };
    }
    case 'LotExpired': {
      const lot = state.lots.get(event.data.lotId);
      invariant(lot !== undefined && lot.expiresAtMs <= occurredAtMs, `lot ${event.data.lotId} expired before its expiry, or without tokens`);
      // An expiry takes every free token of the lot (what holds reserve stays with them), at the lot's own expiry.
      invariant(event.data.amount === freeOf(lot), `expiry of lot ${lot.lotId} takes ${event.data.amount} of its ${freeOf(lot)} free tokens`);
      invariant(Date.parse(event.data.expiresAt) === lot.expiresAtMs, `expiry of lot ${lot.lotId} records expiresAt ${JSON.stringify(event.data.expiresAt)}, not the lot's ${String(lot.expiresAt)}`);
      invariant(drawsOnlyFrom(event.data.draws, event.data.lotId), `expiry of lot ${event.data.lotId} draws from other lots`);
      return debitLots(state, movement(event.data, -event.data.amount), event.data.draws);
    }
    case 'TokensHeld':
      return evolveHold(state, event);
    case 'HoldSettled': {
      const hold = holdOf(state, event.data.holdId);
      assertHoldEndTimely(hold, occurredAtMs, 'settled');
      invariant(event.data.settledAmount + event.data.releasedAmount === hold.amount, `settle of hold ${hold.holdId} splits ${hold.amount} wrongly`);
      // Written before ADR 0028: the settle's TokensUsed follows and debits.
      if (!isSettleWithDebit(event.data)) return endHold(state, event.data, 'settled');
      // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent, a settled amount of 0 or less is a debit of no tokens or a credit, which debitLots refuses with the same LedgerInvariantViolation; this names the hold in the log.
      invariant(event.data.settledAmount > 0, `settle of hold ${hold.holdId} debits ${event.data.settledAmount} tokens`);
      invariant(withinReservations(event.data.draws, hold.reservations), `settle of hold ${hold.holdId} draws beyond what the hold reserved`);
      // The reservations go back to their lots, then the settled amount leaves them.
      const ended = endHold(state, { holdId: hold.holdId, amount: event.data.amount, balanceAfter: state.balance, heldAfter: event.data.heldAfter }, 'settled');
      return debitLots(ended, movement(event.data, -event.data.settledAmount), event.data.draws);
    }
    case 'HoldReleased':
      assertHoldEndTimely(holdOf(state, event.data.holdId), occurredAtMs, 'released');
      return endHold(state, event.data, 'released');
    case 'HoldExpired': {
      const hold = holdOf(state, event.data.holdId);
      assertHoldEndTimely(hold, occurredAtMs, 'expired');
      // Read models and the audit show the hold ending at the expiresAt its expiry records: the hold's own.
      invariant(Date.parse(event.data.expiresAt) === hold.expiresAtMs, `expiry of hold ${hold.holdId} records expiresAt ${JSON.stringify(event.data.expiresAt)}, not the hold's ${hold.expiresAt}`);
      return endHold(state, event.data, 'expired');
    }
    case 'PaymentInitiated': {
      invariant(!state.payments.has(event.data.paymentId), `payment ${event.data.paymentId} initiated twice`);
      invariant(event.data.lot === undefined || areLotTerms(event.data.lot), `payment ${event.data.paymentId} opened on the lot terms ${JSON.stringify(event.data.lot)}`);
      const payment: Payment = {
        ...event.data,
        status: 'PENDING',
        failure: null,
        failureReason: null,
        refundFailure: null,
        providerTransactionId: null,
        providerRefundId: null,
        tokensDebited: null,
        updatedAt: event.data.occurredAt,
      };
      return { ...state, payments: state.payments.set(event.data.paymentId, payment) };
    }
    case 'PaymentCaptured': {
      const payment = paymentOf(state, event.data.paymentId);
      // A FAILED payment may still be captured: the provider took the money (a capture racing its expiry).
      invariant(payment.status === 'PENDING' || payment.status === 'FAILED', `payment ${payment.paymentId} captured while ${payment.status}`);
      return withPayment(state, { ...payment, status: 'COMPLETED', providerTransactionId: event.data.providerTransactionId, updatedAt: event.data.occurredAt });
    }
    case 'PaymentFailed':
    case 'PaymentExpired': {
      const payment = paymentOf(state, event.data.paymentId);
      invariant(payment.status === 'PENDING', `payment ${payment.paymentId} failed while ${payment.status}`);
      const failure = event.type === 'PaymentFailed' ? 'declined' : 'expired';
      return withPayment(state, { ...payment, status: 'FAILED', failure, failureReason: event.data.reason, updatedAt: event.data.occurredAt });
    }
    case 'PaymentRefundRequested': {
      const payment = paymentOf(state, event.data.paymentId);
      invariant(payment.status === 'COMPLETED', `refund of payment ${payment.paymentId} requested while ${payment.status}`);
      invariant(event.data.tokens === payment.tokens, `refund request of payment ${payment.paymentId} reserves ${event.data.tokens} tokens, not its ${payment.tokens}`);
      const reserved = withPayment(state, { ...payment, status: 'REFUND_PENDING', refundFailure: null, updatedAt: event.data.occurredAt });
      // The tokens are reserved in the purchase's own lot, which the refund takes back.
      return { ...reserveInLot(reserved, purchaseLotId(state, payment.paymentId), payment.tokens), reservedForRefunds: state.reservedForRefunds + payment.tokens };
    }
    case 'PaymentRefundFailed': {
      const payment = paymentOf(state, event.data.paymentId);
      invariant(payment.status === 'REFUND_PENDING', `refund of payment ${payment.paymentId} failed while ${payment.status}`);
      invariant(event.data.tokens === payment.tokens, `failed refund of payment ${payment.paymentId} releases ${event.data.tokens} tokens, not its ${payment.tokens}`);
      const completed = withPayment(state, { ...payment, status: 'COMPLETED', refundFailure: event.data.reason, updatedAt: event.data.occurredAt });
      // The request's reservation in the purchase's lot ends: its tokens are the account's to spend again.
      const released = reserveInLot(completed, purchaseLotId(state, payment.paymentId), -payment.tokens);
      return { ...released, reservedForRefunds: state.reservedForRefunds - payment.tokens };
    }
    case 'PaymentRefunded': {
      const payment = paymentOf(state, event.data.paymentId);
      invariant(payment.status === 'COMPLETED' || payment.status === 'REFUND_PENDING', `payment ${payment.paymentId} refunded while ${payment.status}`);
      invariant(event.data.tokensDebited >= 0 && event.data.tokensDebited <= payment.tokens, `refund of payment ${payment.paymentId} debits ${event.data.tokensDebited} tokens`);
      const refunded = withPayment(state, {
        ...payment,
        status: 'REFUNDED',
        refundFailure: null,
        providerRefundId: event.data.providerRefundId,
        tokensDebited: event.data.tokensDebited,
        updatedAt: event.data.occurredAt,
      });
      const heldBack = event.data.heldBack ?? 0;
      if (heldBack > 0) {
        // A refund the provider made on its own: what holds held of the purchase's lot is taken as they give it back.
        const lotId = purchaseLotId(state, payment.paymentId);
        const lot = state.lots.get(lotId);
        invariant(
          payment.status === 'COMPLETED' && Number.isSafeInteger(heldBack) && event.data.tokensDebited + heldBack <= payment.tokens && lot !== undefined && heldBackIn(state, lotId) + heldBack <= heldIn(state, lotId),
          `refund of payment ${payment.paymentId} holds back ${heldBack} tokens of lot ${lotId}, more than its holds hold beside other refunds`,
        );
        return { ...refunded, refundsHeldBack: state.refundsHeldBack.set(payment.paymentId, { lotId, amount: heldBack }) };
      }
      // The reservation ends with the refund; the tokens leave with TokensRefunded, which follows.
      if (payment.status !== 'REFUND_PENDING') return refunded;
      const released = reserveInLot(refunded, purchaseLotId(state, payment.paymentId), -payment.tokens);
      return { ...released, reservedForRefunds: state.reservedForRefunds - payment.tokens };
    }
    case 'PaymentDisputeOpened': {
      const payment = paymentOf(state, event.data.paymentId);
      invariant(payment.status === 'COMPLETED' || payment.status === 'REFUND_PENDING' || payment.status === 'REFUNDED', `payment ${payment.paymentId} disputed while ${payment.status}`);
      invariant(!state.disputes.has(event.data.disputeId), `dispute ${event.data.disputeId} opened twice`);
      const dispute: Dispute = { disputeId: event.data.disputeId, paymentId: payment.paymentId, status: 'open', tokens: 0, openedAt: event.data.occurredAt, closedAt: null };
      return { ...state, disputes: state.disputes.set(dispute.disputeId, dispute) };
    }
    case 'PaymentDisputeClosed': {
      const dispute = state.disputes.get(event.data.disputeId);
      invariant(dispute?.status === 'open' && dispute.paymentId === event.data.paymentId, `dispute ${event.data.disputeId} closed while not open on payment ${event.data.paymentId}`);
      const { tokens, tokensDebited, shortfallAfter, outcome } = event.data;
      invariant(tokensDebited >= 0 && tokensDebited <= tokens && (outcome === 'lost' || tokens === 0), `dispute ${dispute.disputeId} ${outcome} debits ${tokensDebited} of ${tokens} tokens`);
      invariant(shortfallAfter === state.shortfall + tokens - tokensDebited, `dispute ${dispute.disputeId} records shortfallAfter ${shortfallAfter}, replay gives ${state.shortfall + tokens - tokensDebited}`);
      const closed = { ...state, shortfall: shortfallAfter, disputes: state.disputes.set(dispute.disputeId, { ...dispute, status: outcome, tokens, closedAt: event.data.occurredAt }) };
      // A lost dispute owes what a refund held back (its tokensOwed counts them): the refund takes no more.
      return outcome === 'lost' ? { ...closed, refundsHeldBack: closed.refundsHeldBack.delete(dispute.paymentId) } : closed;
    }
    case 'TokensChargedBack':
      invariant(state.disputes.get(event.data.disputeId)?.status === 'lost', `tokens charged back for dispute ${event.data.disputeId} that is not lost`);
      return debitLots(state, movement(event.data, -event.data.amount), event.data.draws);
    case 'ShortfallCovered': {
      invariant(event.data.amount <= state.shortfall && event.data.shortfallAfter === state.shortfall - event.data.amount, `a cover of ${event.data.amount} of a shortfall of ${state.shortfall}`);
      return { ...debitLots(state, movement(event.data, -event.data.amount), event.data.draws), shortfall: event.data.shortfallAfter };
    }
    default: {
      const unknown: never = event;
      // Stryker disable next-line all: unreachable, `evolveTokenAccount` refuses an unknown type first; kept for the compiler's exhaustiveness check.
      throw new LedgerInvariantViolation(`unknown token account event ${JSON.stringify(unknown)}`);
    }
  }
}

function drawsOnlyFrom(draws: readonly Draw[], lotId: string): boolean {
  return draws.every((draw) => draw.lotId === lotId);
}

/** Whether `draws` take from each lot no more than `reservations` set aside there. */
function withinReservations(draws: readonly Draw[], reservations: readonly Draw[]): boolean {
  const left = new Map<string, number>();
  for (const reservation of reservations) left.set(reservation.lotId, (left.get(reservation.lotId) ?? 0) + reservation.amount);
  for (const draw of draws) {
    const rest = (left.get(draw.lotId) ?? 0) - draw.amount;
    if (rest < 0) return false;
    left.set(draw.lotId, rest);
  }
  return true;
}

/** The balance change an event records, with what it claims the balance and held total are after it. */
function movement(data: { readonly amount: number; readonly balanceAfter: number; readonly heldAfter?: number; readonly occurredAt: string }, change: number): LedgerMovement {
  return { change, balanceAfter: data.balanceAfter, heldAfter: data.heldAfter ?? 0, occurredAt: data.occurredAt };
}

function purchaseLotId(state: TokenAccountState, paymentId: string): string {
  return state.purchases.get(paymentId)?.lot?.lotId ?? OPENING_LOT_ID;
}

function paymentOf(state: TokenAccountState, paymentId: string): Payment {
  const payment = state.payments.get(paymentId);
  invariant(payment !== undefined, `event for payment ${paymentId} that was never initiated`);
  return payment;
}

function withPayment(state: TokenAccountState, payment: Payment): TokenAccountState {
  return { ...state, payments: state.payments.set(payment.paymentId, payment) };
}
