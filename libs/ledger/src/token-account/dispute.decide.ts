import { invariant, LedgerError } from '../ledger.errors.js';
import { BALANCE_MAX, CURRENCY_PATTERN, isMoneyAmount } from '../ledger.limits.js';
import type { RecordDispute } from './dispute.commands.js';
import type { DisputeEvent, PaymentDisputeClosed, TokensChargedBack } from './dispute.events.js';
import type { Dispute } from './dispute.state.js';
import { compareDrawOrder, OPENING_LOT_ID, type Draw } from './lot.state.js';
import { drawUpTo, freeLots, sumOf } from './shortfall.decide.js';
import { refundPayment } from './payment.decide.js';
import type { PaymentRefunded, PaymentRefundFailed, TokensRefunded } from './payment.events.js';
import type { Payment } from './payment.state.js';
import { evolveTokenAccount, type TokenAccountState } from './token-account.state.js';

/**
 * Records a dispute as the provider reports it now. Unknown: `PaymentDisputeOpened`, and when it is
 * already closed, `PaymentDisputeClosed` after it (a `closed` notification that overtook its
 * `created`). Known and open: a close, or nothing. Known and closed: nothing, whatever is reported
 * (a closed dispute is final). A lost dispute takes back what the purchase credited, or of a dispute
 * of part of the price that share (`tokensOwed`), from the free tokens, the purchase's own lot first; the part the account no longer holds is added
 * to the shortfall. Another lost dispute of the same payment takes and owes nothing more. A lost
 * dispute of the whole price of a payment whose refund is pending completes the refund instead, as
 * does one of part of it while the provider holds a refund of that request (`refundAtProvider`);
 * otherwise one of part of it ends the refund request as failed and takes that share. Only a captured
 * payment can be disputed (PAYMENT_NOT_CAPTURED: the caller settles the payment with the provider
 * first).
 */
export function recordDispute({ data }: RecordDispute, state: TokenAccountState): readonly (DisputeEvent | PaymentRefundFailed | PaymentRefunded | TokensRefunded)[] {
  invariant(data.disputeId !== '' && isMoneyAmount(data.amount) && CURRENCY_PATTERN.test(data.currency), `dispute ${data.disputeId} of ${data.amount} ${data.currency} is not valid`);
  invariant(data.refundedBefore === undefined || data.refundedBefore === 0 || isMoneyAmount(data.refundedBefore), `dispute ${data.disputeId}: ${String(data.refundedBefore)} refunded before is not an amount of money`);
  const payment = state.payments.get(data.paymentId);
  if (payment === undefined) throw new LedgerError('PAYMENT_NOT_FOUND', `payment ${data.paymentId} does not exist on this account`, { paymentId: data.paymentId });
  if (payment.status !== 'COMPLETED' && payment.status !== 'REFUND_PENDING' && payment.status !== 'REFUNDED') {
    throw new LedgerError('PAYMENT_NOT_CAPTURED', `payment ${payment.paymentId} is ${payment.status}; only a captured payment can be disputed`, {
      paymentId: payment.paymentId,
      paymentStatus: payment.status,
    });
  }
  const earlier = state.disputes.get(data.disputeId);
  invariant(earlier === undefined || earlier.paymentId === payment.paymentId, `dispute ${data.disputeId} is about payment ${String(earlier?.paymentId)}, not ${payment.paymentId}`);
  if (earlier !== undefined && (earlier.status !== 'open' || data.status === 'open')) return [];
  const occurredAt = data.now.toISOString();
  const ids = { userId: payment.userId, paymentId: payment.paymentId, orderId: payment.orderId, disputeId: data.disputeId };
  const opened: DisputeEvent[] = earlier === undefined ? [{ type: 'PaymentDisputeOpened', data: { ...ids, amount: data.amount, currency: data.currency, reason: data.reason, occurredAt } }] : [];
  if (data.status === 'open') return opened;
  if (data.status === 'won') return [...opened, closed(ids, 'won', 0, [], state.shortfall, occurredAt)];
  if (payment.status === 'REFUND_PENDING') {
    // A refund asked for before the dispute was known: the provider refuses to refund a charge the
    // bank took back (Stripe: charge_disputed), so it would stay pending, its tokens reserved, for
    // good.
    // The chargeback is all the money going back (the refund recorded under the dispute's id: the
    // charge was charged back, never refunded), or the provider holds a refund of this request (made
    // before the dispute, still pending or not yet recorded), which returns the rest (recorded under
    // that refund's id, so reconciliation reports it should it fail): the dispute completes the
    // refund, which takes the tokens it reserved; the dispute then owes nothing.
    const atProvider = data.refundAtProvider?.requestedAt === payment.updatedAt ? data.refundAtProvider.refundId : null;
    // The dispute's own amount: a refund the provider holds of this request counts in what it says
    // was refunded, and is told apart by `refundAtProvider`.
    const providerRefundId = disputedShare(payment, { amount: data.amount, currency: data.currency }) === payment.tokens ? data.disputeId : atProvider;
    if (providerRefundId !== null) {
      const refund = refundPayment({ type: 'RefundPayment', data: { userId: payment.userId, paymentId: payment.paymentId, providerRefundId, transactionId: data.transactionId, now: data.now } }, state);
      return [...opened, ...refund, closed(ids, 'lost', 0, [], state.shortfall, occurredAt)];
    }
    // The bank took back part of the price, and the merchant keeps the rest, which the provider
    // refused to refund: the request ends as a failed refund (its reservation released), and the
    // dispute takes its share as of a captured payment. The buyer keeps the tokens of the money kept.
    const released: PaymentRefundFailed = {
      type: 'PaymentRefundFailed',
      data: { userId: payment.userId, paymentId: payment.paymentId, orderId: payment.orderId, tokens: payment.tokens, providerRefundId: null, reason: `${DISPUTE_LOST_REASON} ${data.disputeId}`, occurredAt },
    };
    return [...opened, released, ...takenBack(evolveTokenAccount(state, released), { ...payment, status: 'COMPLETED' }, data, ids, occurredAt)];
  }
  return [...opened, ...takenBack(state, payment, data, ids, occurredAt)];
}

/** What a refund request ended by a lost dispute of part of the price gives as its failure (`PaymentRefundFailed.reason`), before the dispute's id. */
export const DISPUTE_LOST_REASON = 'dispute lost:';

/**
 * A lost dispute of a captured payment: what it owes (`tokensOwed`) taken from the free tokens, the
 * purchase's own lot first, the rest added to the shortfall.
 */
function takenBack(
  state: TokenAccountState,
  payment: Payment,
  data: RecordDispute['data'],
  ids: { readonly userId: string; readonly paymentId: string; readonly orderId: string; readonly disputeId: string },
  occurredAt: string,
): readonly (PaymentDisputeClosed | TokensChargedBack)[] {
  // A charge is disputed once at Stripe; should a second dispute of the payment be lost too, the
  // first already took the purchase back (or owes it): nothing is taken or owed twice.
  const tokens = hasLostDispute(state, payment.paymentId) ? 0 : tokensOwed(payment, data);
  const draws = chargebackDraws(state, payment.paymentId, tokens, data.now);
  const debited = sumOf(draws);
  if (tokens - debited > BALANCE_MAX - state.shortfall) {
    // Only reachable with purchases near BALANCE_MAX; refused, as a credit that would overflow is.
    throw new LedgerError('BALANCE_OUT_OF_RANGE', `a shortfall of ${state.shortfall + tokens - debited} tokens would exceed ${BALANCE_MAX}`, { balance: state.balance, requested: tokens - debited });
  }
  const close = closed(ids, 'lost', tokens, draws, state.shortfall + tokens - debited, occurredAt);
  if (debited === 0) return [close];
  const chargedBack: TokensChargedBack = {
    type: 'TokensChargedBack',
    data: {
      userId: payment.userId,
      transactionId: data.transactionId,
      paymentId: payment.paymentId,
      disputeId: data.disputeId,
      amount: debited,
      description: `Chargeback of token package ${payment.packageId} (dispute ${data.disputeId})`,
      balanceAfter: state.balance - debited,
      heldAfter: state.held,
      draws,
      occurredAt,
    },
  };
  return [close, chargedBack];
}

function closed(
  ids: { readonly userId: string; readonly paymentId: string; readonly orderId: string; readonly disputeId: string },
  outcome: PaymentDisputeClosed['data']['outcome'],
  tokens: number,
  draws: readonly Draw[],
  shortfallAfter: number,
  occurredAt: string,
): PaymentDisputeClosed {
  return { type: 'PaymentDisputeClosed', data: { ...ids, outcome, tokens, tokensDebited: sumOf(draws), shortfallAfter, occurredAt } };
}

/**
 * The tokens a lost dispute takes back: what the purchase credited (of a dispute of part of the
 * price, that part: `disputedShare`), less what a refund already took back. A payment whose refund is
 * pending owes nothing here: its refund reserved all its tokens, and the lost dispute completes that
 * refund, or, of part of the price with no refund at the provider, ends it first and takes its share
 * as of a COMPLETED payment (`recordDispute`).
 */
export function tokensOwed(payment: Payment, disputed: Disputed): number {
  switch (payment.status) {
    case 'COMPLETED':
      return disputedShare(payment, disputed);
    case 'REFUNDED':
      return payment.tokens - (payment.tokensDebited ?? payment.tokens);
    case 'REFUND_PENDING':
    case 'PENDING':
    case 'FAILED':
      return 0;
  }
}

/** The money a dispute is about, and what refunds of part of the price had returned before it (`RecordDispute`). */
type Disputed = { readonly amount: number; readonly currency: string; readonly refundedBefore?: number };

/**
 * The tokens of the part of the price a dispute is about. Stripe disputes the charge's amount as a
 * rule, but "it can differ ... because only part of the order is disputed": then that share of the
 * tokens, rounded up (the merchant lost that part of the money; a token partly paid for by it is
 * taken back whole). All of them for a dispute of the whole price or more, or of what refunds of
 * part of it left (the merchant kept none of the money: a refund of part keeps the buyer's tokens
 * only while the merchant keeps the rest, as a refund of the rest takes them all), or in another
 * currency (which Stripe does not report: the charge's currency is the dispute's). In BigInt, as
 * tokens times minor units may pass 2^53.
 */
export function disputedShare(payment: Payment, disputed: Disputed): number {
  if (disputed.currency !== payment.currency || disputed.amount >= payment.amount - (disputed.refundedBefore ?? 0)) return payment.tokens;
  const price = BigInt(payment.amount);
  return Number((BigInt(payment.tokens) * BigInt(disputed.amount) + price - 1n) / price);
}

/**
 * Up to `tokens` from the free tokens of the live lots (held tokens and tokens reserved for a refund
 * stay where they are): the purchase's own lot first, then the others in draw-down order.
 */
function chargebackDraws(state: TokenAccountState, paymentId: string, tokens: number, now: Date): readonly Draw[] {
  const ownLotId = state.purchases.get(paymentId)?.lot?.lotId ?? OPENING_LOT_ID;
  const lots = freeLots(state, now).sort((left, right) => Number(right.lotId === ownLotId) - Number(left.lotId === ownLotId) || compareDrawOrder(left, right));
  return drawUpTo(lots, tokens);
}

/** Spending on the user's behalf (usage, a new hold) is refused while lost disputes are not paid off. */
export function assertNoShortfall(state: TokenAccountState): void {
  if (state.shortfall > 0) {
    throw new LedgerError('ACCOUNT_IN_SHORTFALL', `the account owes ${state.shortfall} tokens of lost payment disputes; a purchase or grant covers them first`, {
      shortfall: state.shortfall,
    });
  }
}

/** Whether a dispute of this payment was lost: it took the purchase's tokens back (or owes them as shortfall), whatever other disputes of it say. */
export function hasLostDispute(state: TokenAccountState, paymentId: string): boolean {
  return state.disputes.some((dispute) => dispute.paymentId === paymentId && dispute.status === 'lost');
}

/** What the lost disputes of this payment owed back (taken, or owed as shortfall): a refund of it takes only the rest. */
export function owedByLostDisputes(state: TokenAccountState, paymentId: string): number {
  return state.disputes.reduce((total, dispute) => (dispute.paymentId === paymentId ? total + dispute.tokens : total), 0);
}

/** A dispute of this payment that is open or lost, if any: its refund is refused (the money goes back through the dispute). */
export function blockingDisputeOf(state: TokenAccountState, paymentId: string): Dispute | undefined {
  return state.disputes.find((dispute) => dispute.paymentId === paymentId && dispute.status !== 'won');
}
