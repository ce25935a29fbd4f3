import { invariant, LedgerError } from '../ledger.errors.js';
import { CURRENCY_PATTERN, isMoneyAmount, isTokenAmount, LOT_PRIORITY_DEFAULT } from '../ledger.limits.js';
import { assertBalanceFits } from './balance.rules.js';
import type { CapturePayment, ExpirePayment, FailRefund, InitiatePayment, RefundPayment, RequestRefund } from './payment.commands.js';
import {
  PAYMENT_TIMED_OUT,
  type PaymentCaptured,
  type PaymentExpired,
  type PaymentFailed,
  type PaymentInitiated,
  type PaymentRefunded,
  type PaymentRefundFailed,
  type PaymentRefundRequested,
  type TokensRefunded,
} from './payment.events.js';
import { areLotTerms, refundDescription, type Payment } from './payment.state.js';
import type { TokensPurchased } from './token-account.events.js';
import { availableBalance, type TokenAccountState } from './token-account.state.js';
import { assertLotRoom } from './hold.decide.js';
import { sweepExpiries } from './expiry.decide.js';
import { freeOf, OPENING_LOT_ID, type LotTerms } from './lot.state.js';
import { heldBackIn, heldIn } from './lot.evolve.js';
import { blockingDisputeOf, hasLostDispute, owedByLostDisputes } from './dispute.decide.js';

/** Opens a PENDING payment. Repeating it with the same payload decides nothing; another payload is refused. */
export function initiatePayment({ data }: InitiatePayment, state: TokenAccountState): readonly PaymentInitiated[] {
  invariant(isTokenAmount(data.tokens), `package ${data.packageId} has ${data.tokens} tokens`);
  invariant(isMoneyAmount(data.amount) && CURRENCY_PATTERN.test(data.currency), `package ${data.packageId} has the price ${data.amount} ${data.currency}`);
  invariant(data.expiresAt.getTime() > data.now.getTime(), 'a payment must expire after it starts');
  invariant(data.lot === undefined || areLotTerms(data.lot), `package ${data.packageId} has the lot terms ${JSON.stringify(data.lot)}`);
  const event: PaymentInitiated = {
    type: 'PaymentInitiated',
    data: {
      userId: data.userId,
      paymentId: data.paymentId,
      orderId: data.orderId,
      packageId: data.packageId,
      tokens: data.tokens,
      amount: data.amount,
      currency: data.currency,
      provider: data.provider,
      occurredAt: data.now.toISOString(),
      expiresAt: data.expiresAt.toISOString(),
      ...(data.lot === undefined ? {} : { lot: { priority: data.lot.priority, expiresInDays: data.lot.expiresInDays } }),
    },
  };
  // A repeat is the same payment though the package's terms changed since: it keeps those it was opened with.
  const earlier = state.payments.get(data.paymentId);
  if (earlier !== undefined) {
    const same = earlier.orderId === data.orderId && earlier.packageId === data.packageId && earlier.tokens === data.tokens && earlier.amount === data.amount;
    if (same) return [];
    throw new LedgerError('PAYMENT_ID_REUSED', `payment ${data.paymentId} was already initiated with another order or package`, { paymentId: data.paymentId });
  }
  if (state.purchases.has(data.paymentId)) {
    throw new LedgerError('PAYMENT_ID_REUSED', `payment ${data.paymentId} was already credited directly`, { paymentId: data.paymentId });
  }
  assertMayOpenPayment(state, data.now, data.pendingPaymentsMax);
  return [event];
}

/**
 * Refuses a new payment while the user already has `pendingPaymentsMax` open: PENDING and before
 * their expiry (one past it is over, whether or not the expiry job has recorded it yet). Checked
 * before the provider is asked for an order, and again when the payment is recorded.
 */
export function assertMayOpenPayment(state: TokenAccountState, now: Date, pendingPaymentsMax: number): void {
  invariant(Number.isSafeInteger(pendingPaymentsMax) && pendingPaymentsMax >= 1, `pendingPaymentsMax ${pendingPaymentsMax} is not a positive integer`);
  const open = openPaymentCount(state, now);
  if (open >= pendingPaymentsMax) {
    throw new LedgerError('TOO_MANY_PENDING_PAYMENTS', `the user has ${open} open payments, the most allowed; capture or let one expire first`, {
      pending: open,
      max: pendingPaymentsMax,
    });
  }
}

function openPaymentCount(state: TokenAccountState, now: Date): number {
  let open = 0;
  for (const payment of state.payments.values()) {
    if (payment.status === 'PENDING' && now.getTime() < Date.parse(payment.expiresAt)) open += 1;
  }
  return open;
}

/**
 * Whether a capture request may go to the provider: 'capture' for a PENDING payment before its
 * expiry, 'done' for one already captured (the caller returns it as it is). Anything else is refused
 * here, before any money moves.
 */
export function captureDecision(state: TokenAccountState, paymentId: string, now: Date): 'capture' | 'done' {
  const payment = existing(state, paymentId);
  switch (payment.status) {
    case 'COMPLETED':
    case 'REFUND_PENDING':
    case 'REFUNDED':
      return 'done';
    case 'FAILED':
      throw failedError(payment);
    case 'PENDING': {
      if (now.getTime() >= Date.parse(payment.expiresAt)) throw expiredError(payment);
      // Checked here, before the provider takes the money, not only when the capture is recorded,
      // and on the state the capture is decided on: with the expiries due at `now` applied.
      const swept = sweepExpiries(state, { userId: payment.userId, now, transactionId: payment.paymentId }, 'gate').state;
      assertBalanceFits(swept.balance, payment.tokens);
      assertLotRoom(swept);
      return 'capture';
    }
    default: {
      const unknown: never = payment.status;
      throw new Error(`unknown payment status ${String(unknown)}`);
    }
  }
}

/**
 * Records what the provider answered. The provider has the last word about money: a capture it
 * reports is credited exactly once, even on a payment that expired meanwhile; a decline fails a
 * PENDING payment. A payment already captured decides nothing (a repeated capture credits nothing).
 */
export function capturePayment({ data }: CapturePayment, state: TokenAccountState): readonly (PaymentCaptured | TokensPurchased | PaymentFailed)[] {
  const payment = existing(state, data.paymentId);
  if (payment.status === 'COMPLETED' || payment.status === 'REFUND_PENDING' || payment.status === 'REFUNDED') return [];
  const occurredAt = data.now.toISOString();
  const ids = { userId: payment.userId, paymentId: payment.paymentId, orderId: payment.orderId };
  if (data.outcome.status === 'declined') {
    if (payment.status !== 'PENDING') return [];
    return [{ type: 'PaymentFailed', data: { ...ids, reason: data.outcome.reason, occurredAt } }];
  }
  assertBalanceFits(state.balance, payment.tokens);
  return [
    { type: 'PaymentCaptured', data: { ...ids, providerTransactionId: data.outcome.providerTransactionId, occurredAt } },
    {
      type: 'TokensPurchased',
      data: {
        userId: payment.userId,
        transactionId: data.transactionId,
        paymentId: payment.paymentId,
        amount: payment.tokens,
        description: `Token package ${payment.packageId}`,
        balanceAfter: state.balance + payment.tokens,
        occurredAt,
        // The terms the payment was opened with; the capture's (configured now) for one opened before payments kept them.
        lot: purchaseLot(data.transactionId, payment.lot ?? data.lot, data.now),
        heldAfter: state.held,
      },
    },
  ];
}

/** The lot a capture credits, on its package's terms (a package's lifetime counts from the capture). */
function purchaseLot(lotId: string, terms: CapturePayment['data']['lot'], now: Date): LotTerms {
  const priority = terms?.priority ?? LOT_PRIORITY_DEFAULT;
  const days = terms?.expiresInDays ?? null;
  invariant(areLotTerms({ priority, expiresInDays: days }), `package lot terms ${JSON.stringify(terms)} are not valid`);
  return { lotId, priority, expiresAt: days === null ? null : new Date(now.getTime() + days * 86_400_000).toISOString() };
}

/** The lot a purchase credited (the opening lot for a purchase written before lots), and its tokens no hold has set aside. */
function purchaseLotOf(state: TokenAccountState, paymentId: string): { readonly lotId: string; readonly free: number } {
  const lotId = state.purchases.get(paymentId)?.lot?.lotId ?? OPENING_LOT_ID;
  const lot = state.lots.get(lotId);
  return { lotId, free: lot === undefined ? 0 : freeOf(lot) };
}

/** Expires a payment still PENDING after its expiry; anything else (not due, captured, failed) decides nothing. */
export function expirePayment({ data }: ExpirePayment, state: TokenAccountState): readonly PaymentExpired[] {
  const payment = existing(state, data.paymentId);
  if (payment.status !== 'PENDING' || data.now.getTime() < Date.parse(payment.expiresAt)) return [];
  return [{ type: 'PaymentExpired', data: { userId: payment.userId, paymentId: payment.paymentId, orderId: payment.orderId, reason: PAYMENT_TIMED_OUT, occurredAt: data.now.toISOString() } }];
}

/**
 * Records that a refund is asked for, before any provider call: the payment becomes REFUND_PENDING
 * and its tokens are reserved in the purchase's own lot, so nothing spends them while the provider
 * refunds. Refused unless the payment is COMPLETED, its tokens are all available (not spent, not
 * reserved by another refund: REFUND_EXCEEDS_BALANCE) and its lot still holds all of them free of
 * holds (REFUND_EXCEEDS_LOT: a refund takes back that purchase's own tokens, not whatever else is
 * left; a purchase partly spent is refused, and an admin may refund the money outside and adjust).
 * A refund already asked for or made decides nothing (the caller carries it on).
 */
export function requestRefund({ data }: RequestRefund, state: TokenAccountState): readonly PaymentRefundRequested[] {
  const payment = existing(state, data.paymentId);
  if (payment.status === 'REFUND_PENDING' || payment.status === 'REFUNDED') return [];
  if (payment.status !== 'COMPLETED') throw notCaptured(payment);
  const dispute = blockingDisputeOf(state, payment.paymentId);
  if (dispute !== undefined) {
    throw new LedgerError('PAYMENT_DISPUTED', `payment ${payment.paymentId} has dispute ${dispute.disputeId} (${dispute.status}); its money goes back through the dispute`, {
      paymentId: payment.paymentId,
      disputeId: dispute.disputeId,
      disputeStatus: dispute.status,
    });
  }
  const available = availableBalance(state);
  if (available < payment.tokens) {
    throw new LedgerError('REFUND_EXCEEDS_BALANCE', `refunding payment ${payment.paymentId} would take back ${payment.tokens} tokens from an available balance of ${available}`, {
      paymentId: payment.paymentId,
      balance: state.balance,
      available,
      requested: payment.tokens,
    });
  }
  const { lotId, free } = purchaseLotOf(state, payment.paymentId);
  if (free < payment.tokens) {
    throw new LedgerError('REFUND_EXCEEDS_LOT', `payment ${payment.paymentId} credited ${payment.tokens} tokens to lot ${lotId}, of which ${free} are left unheld`, {
      paymentId: payment.paymentId,
      lotId,
      requested: payment.tokens,
      remaining: free,
    });
  }
  return [{ type: 'PaymentRefundRequested', data: { userId: payment.userId, paymentId: payment.paymentId, orderId: payment.orderId, tokens: payment.tokens, occurredAt: data.now.toISOString() } }];
}

/**
 * Ends a refund request whose refund failed at the provider: the payment is COMPLETED again and the
 * tokens its request reserved are released. Only the REFUND_PENDING request the failure was learned
 * for (`requestedAt`) ends. Nothing is decided for a COMPLETED payment (ended already, by another
 * process), a REFUNDED one (another refund returned the money since), a later request (asked for
 * after the failure was learned), or while a dispute of the payment is open: its tokens stay reserved
 * for the dispute, whose loss completes the refund or, of part of the price, ends the request (ADR
 * 0024), and whose win lets the next report end the request. One never captured is refused.
 */
export function failRefund({ data }: FailRefund, state: TokenAccountState): readonly PaymentRefundFailed[] {
  invariant(data.reason.length > 0, `the failed refund of payment ${data.paymentId} has no reason`);
  const payment = existing(state, data.paymentId);
  if (payment.status === 'COMPLETED' || payment.status === 'REFUNDED') return [];
  if (payment.status !== 'REFUND_PENDING') throw notCaptured(payment);
  if (payment.updatedAt !== data.requestedAt || blockingDisputeOf(state, payment.paymentId) !== undefined) return [];
  return [
    {
      type: 'PaymentRefundFailed',
      data: {
        userId: payment.userId,
        paymentId: payment.paymentId,
        orderId: payment.orderId,
        tokens: payment.tokens,
        providerRefundId: data.providerRefundId,
        reason: data.reason,
        occurredAt: data.now.toISOString(),
      },
    },
  ];
}

/**
 * Records a refund the provider made: the payment REFUNDED and its tokens taken back, in one append.
 * Normally the payment is REFUND_PENDING and its tokens were reserved by the request. A COMPLETED
 * payment is refunded here too when the provider refunded without a request of ours (an operator at
 * the provider, found by reconciliation or a webhook): the money is back with the customer, so the
 * refund is recorded and takes back what is left of the purchase's lot (`tokensDebited`), never a
 * negative balance. What holds hold of that lot is held back (`heldBack`), taken as they give it back (`expiriesDue`).
 * After a lost dispute of the payment, the refund takes only what the dispute did not owe (nothing
 * after a dispute of the whole price; the rest after one of part of it), and of that only what is
 * free: nothing is held back.
 */
export function refundPayment({ data }: RefundPayment, state: TokenAccountState): readonly (PaymentRefunded | TokensRefunded)[] {
  const payment = existing(state, data.paymentId);
  if (payment.status === 'REFUNDED') return [];
  if (payment.status !== 'COMPLETED' && payment.status !== 'REFUND_PENDING') throw notCaptured(payment);
  // A pending refund reserved the whole purchase in its lot, and the reservation ends with it. A
  // refund the provider made without our request takes back what is left of the lot, free of holds,
  // and holds back what holds hold of it, to take as they give it back.
  const { lotId, free } = purchaseLotOf(state, data.paymentId);
  // A lost dispute already took back what it owed (all of the purchase, or of a dispute of part of
  // the price that share; or owes it as shortfall): the refund takes the rest that is free, and holds
  // nothing back (what holds hold is theirs, as spent tokens are: `refundsHeldBack` is a refund's
  // before any lost dispute, which owes what it held back).
  const lostDispute = hasLostDispute(state, data.paymentId);
  const tokensDebited = payment.status === 'REFUND_PENDING' ? payment.tokens : Math.min(payment.tokens - owedByLostDisputes(state, data.paymentId), free);
  // Less what other refunds already hold back there (payments bought before lots share the opening lot).
  const heldBack = payment.status === 'COMPLETED' && !lostDispute ? Math.min(payment.tokens - tokensDebited, heldIn(state, lotId) - heldBackIn(state, lotId)) : 0;
  const occurredAt = data.now.toISOString();
  const refunded: PaymentRefunded = {
    type: 'PaymentRefunded',
    data: {
      userId: payment.userId,
      paymentId: payment.paymentId,
      orderId: payment.orderId,
      providerRefundId: data.providerRefundId,
      tokens: payment.tokens,
      tokensDebited,
      ...(heldBack > 0 ? { heldBack } : {}),
      occurredAt,
    },
  };
  if (tokensDebited === 0) return [refunded];
  return [
    refunded,
    {
      type: 'TokensRefunded',
      data: {
        userId: payment.userId,
        transactionId: data.transactionId,
        paymentId: payment.paymentId,
        amount: tokensDebited,
        description: refundDescription(payment),
        balanceAfter: state.balance - tokensDebited,
        occurredAt,
        draws: [{ lotId, amount: tokensDebited }],
        heldAfter: state.held,
      },
    },
  ];
}

function notCaptured(payment: Payment): LedgerError {
  return new LedgerError('PAYMENT_NOT_CAPTURED', `payment ${payment.paymentId} is ${payment.status}; only a captured payment can be refunded`, {
    paymentId: payment.paymentId,
    paymentStatus: payment.status,
  });
}

function existing(state: TokenAccountState, paymentId: string): Payment {
  const payment = state.payments.get(paymentId);
  if (payment === undefined) throw new LedgerError('PAYMENT_NOT_FOUND', `payment ${paymentId} does not exist on this account`, { paymentId });
  return payment;
}

function failedError(payment: Payment): LedgerError {
  if (payment.failure === 'expired') return expiredError(payment);
  return new LedgerError('PAYMENT_DECLINED', `payment ${payment.paymentId} was declined: ${payment.failureReason ?? 'no reason given'}`, {
    paymentId: payment.paymentId,
    reason: payment.failureReason,
  });
}

function expiredError(payment: Payment): LedgerError {
  return new LedgerError('PAYMENT_EXPIRED', `payment ${payment.paymentId} expired at ${payment.expiresAt}`, { paymentId: payment.paymentId, expiresAt: payment.expiresAt });
}
