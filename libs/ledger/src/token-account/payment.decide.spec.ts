import { fold } from '../decider.js';
import { LedgerError, LedgerInvariantViolation } from '../ledger.errors.js';
import { BALANCE_MAX, LOT_PRIORITY_DEFAULT, LOT_PRIORITY_MAX, PURCHASE_LIFETIME_DAYS_MAX } from '../ledger.limits.js';
import { deciderSpecification } from '../testing/decider-specification.js';
import type { CapturePayment, ExpirePayment, FailRefund, InitiatePayment, RefundPayment, RequestRefund } from './payment.commands.js';
import { captureDecision } from './payment.decide.js';
import type { PaymentCaptured, PaymentInitiated, PaymentRefundFailed, PaymentRefundRequested, TokensRefunded } from './payment.events.js';
import type { Payment } from './payment.state.js';
import { tokenAccountDecider } from './token-account.decider.js';
import { availableBalance } from './token-account.state.js';
import type { TokenAccountCommand } from './token-account.commands.js';
import type { TokenAccountEvent, TokensPurchased, TokensUsed } from './token-account.events.js';
import { tokenAccountSnapshot } from './token-account.snapshot.js';
import { SnapshotRejected } from '../snapshot.js';

const userId = '11111111-1111-4111-8111-111111111111';
const paymentId = '22222222-2222-4222-8222-222222222222';
const orderId = 'MOCK-ORDER-1';
const transactionId = '44444444-4444-4444-8444-444444444444';
const startedAt = new Date('2026-11-24T12:00:00.000Z');
const expiresAt = new Date('2026-11-24T13:00:00.000Z');
const later = new Date('2026-11-24T12:10:00.000Z');
const afterExpiry = new Date('2026-11-24T13:00:00.000Z');
const spec = deciderSpecification(tokenAccountDecider);

const initiate: InitiatePayment = {
  type: 'InitiatePayment',
  data: { userId, paymentId, orderId, packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'mock', now: startedAt, expiresAt, pendingPaymentsMax: 10 },
};
const initiated: PaymentInitiated = {
  type: 'PaymentInitiated',
  data: { userId, paymentId, orderId, packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'mock', occurredAt: startedAt.toISOString(), expiresAt: expiresAt.toISOString() },
};
const captured: PaymentCaptured = { type: 'PaymentCaptured', data: { userId, paymentId, orderId, providerTransactionId: 'MOCK-CAPTURE-1', occurredAt: later.toISOString() } };
const credited: TokensPurchased = {
  type: 'TokensPurchased',
  data: {
    userId,
    transactionId,
    paymentId,
    amount: 100,
    description: 'Token package starter',
    balanceAfter: 100,
    occurredAt: later.toISOString(),
    lot: { lotId: transactionId, priority: LOT_PRIORITY_DEFAULT, expiresAt: null },
    heldAfter: 0,
  },
};

function capture(outcome: CapturePayment['data']['outcome'], now = later): CapturePayment {
  return { type: 'CapturePayment', data: { userId, paymentId, outcome, transactionId, now } };
}
const approved = capture({ status: 'captured', providerTransactionId: 'MOCK-CAPTURE-1' });
const expire = (now: Date): ExpirePayment => ({ type: 'ExpirePayment', data: { userId, paymentId, now } });
const refund: RefundPayment = { type: 'RefundPayment', data: { userId, paymentId, providerRefundId: 'MOCK-REFUND-1', transactionId: 'refund-tx', now: later } };
const requestRefundCommand: RequestRefund = { type: 'RequestRefund', data: { userId, paymentId, transactionId: 'tx-refund-request', now: later } };
const refundRequested: PaymentRefundRequested = { type: 'PaymentRefundRequested', data: { userId, paymentId, orderId, tokens: 100, occurredAt: later.toISOString() } };
const used = (amount: number, balanceAfter: number): TokensUsed => ({
  type: 'TokensUsed',
  data: { userId, transactionId: 'use', amount, description: null, balanceAfter, occurredAt: later.toISOString(), draws: [{ lotId: transactionId, amount }], heldAfter: 0 },
});
const state = (events: readonly TokenAccountEvent[]) => fold(tokenAccountDecider, tokenAccountDecider.initialState, events);

function thrownCode(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    if (error instanceof LedgerError) return error.code;
    throw error;
  }
  return undefined;
}

describe('payments: at most N open payments', () => {
  const other = (index: number, at = startedAt): InitiatePayment => ({
    type: 'InitiatePayment',
    data: { ...initiate.data, paymentId: `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`, orderId: `order-${index}`, now: at, expiresAt: new Date(at.getTime() + 3_600_000), pendingPaymentsMax: 3 },
  });
  const eventsOf = (commands: readonly InitiatePayment[]) => commands.flatMap((command) => tokenAccountDecider.decide(command, tokenAccountDecider.initialState));

  it('refuses the payment past the cap with TOO_MANY_PENDING_PAYMENTS, pending and max', () => {
    const three = eventsOf([other(1), other(2), other(3)]);
    spec.given(three).when(other(4)).thenThrows('TOO_MANY_PENDING_PAYMENTS', { pending: 3, max: 3 });
    spec.given(eventsOf([other(1), other(2)])).when(other(3)).then(eventsOf([other(3)]));
  });

  it('still answers a repeat of an open payment at the cap (idempotent), and counts no captured, failed or expired one', () => {
    const three = eventsOf([other(1), other(2), other(3)]);
    spec.given(three).when(other(2)).thenNothing();
    const capturedOne: PaymentCaptured = { type: 'PaymentCaptured', data: { userId, paymentId: other(1).data.paymentId, orderId: 'order-1', providerTransactionId: 'T', occurredAt: later.toISOString() } };
    const creditedOne: TokensPurchased = { ...credited, data: { ...credited.data, paymentId: other(1).data.paymentId } };
    spec.given([...three, capturedOne, creditedOne]).when(other(4, later)).then(eventsOf([other(4, later)]));
    // Past their expiry the three are not open any more, even before the expiry job records it.
    const afterwards = new Date(startedAt.getTime() + 3_600_000);
    spec.given(three).when(other(4, afterwards)).then(eventsOf([other(4, afterwards)]));
  });
});

describe('payments: InitiatePayment', () => {
  it('opens a PENDING payment with every value in the event', () => {
    spec.given([]).when(initiate).then([initiated]);
  });
  it('decides nothing when repeated with the same payload, and refuses another package under the same id', () => {
    spec.given([initiated]).when(initiate).thenNothing();
    spec.given([initiated]).when({ ...initiate, data: { ...initiate.data, packageId: 'pro', tokens: 1000 } }).thenThrows('PAYMENT_ID_REUSED');
  });
  it('refuses a payment id already credited directly by AddTokens', () => {
    const direct: TokensPurchased = { type: 'TokensPurchased', data: { ...credited.data, description: null } };
    spec.given([direct]).when(initiate).thenThrows('PAYMENT_ID_REUSED');
  });
});

describe("payments: a package's lot terms, kept from the payment's opening", () => {
  const offered = { priority: 5, expiresInDays: 30 };
  const opened: PaymentInitiated = { ...initiated, data: { ...initiated.data, lot: offered } };
  const withTerms = (lot: InitiatePayment['data']['lot']): InitiatePayment => ({ ...initiate, data: { ...initiate.data, lot } });
  const captureOn = (lot: CapturePayment['data']['lot']): CapturePayment => ({ ...approved, data: { ...approved.data, ...(lot === undefined ? {} : { lot }) } });
  const creditedOn = (priority: number, expiresAt: string | null): TokensPurchased => ({ ...credited, data: { ...credited.data, lot: { lotId: transactionId, priority, expiresAt } } });
  const in30Days = new Date(later.getTime() + 30 * 86_400_000).toISOString();

  it('records the terms offered when the payment opens, and a repeat with other terms (changed since) decides nothing', () => {
    spec.given([]).when(withTerms(offered)).then([opened]);
    spec.given([opened]).when(withTerms({ priority: 200, expiresInDays: 1 })).thenNothing();
  });

  it('credits the capture on the terms the payment was opened with, not the ones configured at the capture', () => {
    spec.given([opened]).when(captureOn({ priority: 200, expiresInDays: 1 })).then([captured, creditedOn(5, in30Days)]);
    spec.given([opened]).when(captureOn(undefined)).then([captured, creditedOn(5, in30Days)]);
  });

  it('credits a payment opened before payments kept terms on the terms the capture brings, or the defaults', () => {
    spec.given([initiated]).when(captureOn({ priority: 7, expiresInDays: null })).then([captured, creditedOn(7, null)]);
    spec.given([initiated]).when(captureOn(undefined)).then([captured, creditedOn(LOT_PRIORITY_DEFAULT, null)]);
  });

  it.each([
    ['a priority out of range', { priority: -1, expiresInDays: null }],
    ['a lifetime of 0 days', { priority: 5, expiresInDays: 0 }],
    ['a lifetime of part of a day', { priority: 5, expiresInDays: 1.5 }],
    ['a lifetime past the longest a package may give', { priority: 5, expiresInDays: PURCHASE_LIFETIME_DAYS_MAX + 1 }],
  ])('refuses to open a payment on %s, which no configuration loads, and to replay a stream that did', (_name, lot) => {
    expect(() => tokenAccountDecider.decide(withTerms(lot), tokenAccountDecider.initialState)).toThrow(LedgerInvariantViolation);
    expect(() => state([{ ...opened, data: { ...opened.data, lot } }])).toThrow(LedgerInvariantViolation);
  });

  it('credits a capture on the longest lifetime a package may give', () => {
    const longest = { priority: 5, expiresInDays: PURCHASE_LIFETIME_DAYS_MAX };
    const decided = tokenAccountDecider.decide(captureOn(undefined), state([{ ...opened, data: { ...opened.data, lot: longest } }]));
    expect(decided[1]).toMatchObject({ data: { lot: { priority: 5, expiresAt: new Date(later.getTime() + PURCHASE_LIFETIME_DAYS_MAX * 86_400_000).toISOString() } } });
  });

  it('keeps the terms through a snapshot, and refuses a snapshot whose terms are not valid', () => {
    const kept = state([opened]);
    const decoded = tokenAccountSnapshot.decode(JSON.parse(JSON.stringify(tokenAccountSnapshot.encode(kept))));
    expect(decoded.payments.get(paymentId)?.lot).toEqual(offered);
    const encoded = JSON.parse(JSON.stringify(tokenAccountSnapshot.encode(kept))) as { payments: { lot: unknown }[] };
    for (const lot of [{ priority: 5, expiresInDays: 0 }, { priority: 1e9, expiresInDays: null }, { priority: 5 }, 'terms']) {
      const broken = { ...encoded, payments: encoded.payments.map((payment) => ({ ...payment, lot })) };
      expect(() => tokenAccountSnapshot.decode(broken)).toThrow(SnapshotRejected);
    }
  });
});

describe('payments: CapturePayment', () => {
  it('captures and credits the package in one decision', () => {
    spec.given([initiated]).when(approved).then([captured, credited]);
  });
  it('adds the package to an existing balance', () => {
    const funded: TokensPurchased = {
      type: 'TokensPurchased',
      data: { ...credited.data, paymentId: 'other', transactionId: 'funding', balanceAfter: 40, amount: 40, lot: { lotId: 'funding', priority: LOT_PRIORITY_DEFAULT, expiresAt: null } },
    };
    spec
      .given([funded, initiated])
      .when(approved)
      .then([captured, { ...credited, data: { ...credited.data, balanceAfter: 140 } }]);
  });
  it('credits nothing when a captured payment is captured again', () => {
    spec.given([initiated, captured, credited]).when(approved).thenNothing();
    expect(captureDecision(state([initiated, captured, credited]), paymentId, later)).toBe('done');
  });
  it('fails a PENDING payment the provider declined', () => {
    spec
      .given([initiated])
      .when(capture({ status: 'declined', reason: 'card_declined' }))
      .then([{ type: 'PaymentFailed', data: { userId, paymentId, orderId, reason: 'card_declined', occurredAt: later.toISOString() } }]);
  });
  it('refuses to send a capture to the provider when its tokens would take the balance past the maximum', () => {
    const nearMax: TokensPurchased = {
      type: 'TokensPurchased',
      data: { userId, transactionId: 'big', paymentId: 'external', amount: BALANCE_MAX - 50, description: null, balanceAfter: BALANCE_MAX - 50, occurredAt: startedAt.toISOString() },
    };
    expect(thrownCode(() => captureDecision(state([nearMax, initiated]), paymentId, later))).toBe('BALANCE_OUT_OF_RANGE');
  });
  it('refuses to send a capture to the provider once the payment is due to expire, declined, or unknown', () => {
    expect(captureDecision(state([initiated]), paymentId, later)).toBe('capture');
    expect(thrownCode(() => captureDecision(state([initiated]), paymentId, afterExpiry))).toBe('PAYMENT_EXPIRED');
    const expired = state([initiated, { type: 'PaymentExpired', data: { userId, paymentId, orderId, reason: 'Payment timed out', occurredAt: afterExpiry.toISOString() } }]);
    expect(thrownCode(() => captureDecision(expired, paymentId, later))).toBe('PAYMENT_EXPIRED');
    const declined = state([initiated, { type: 'PaymentFailed', data: { userId, paymentId, orderId, reason: 'card_declined', occurredAt: later.toISOString() } }]);
    expect(thrownCode(() => captureDecision(declined, paymentId, later))).toBe('PAYMENT_DECLINED');
    expect(thrownCode(() => captureDecision(state([]), paymentId, later))).toBe('PAYMENT_NOT_FOUND');
  });
  it('credits money the provider took even when the payment expired meanwhile, recorded no earlier than the expiry', () => {
    const expiredEvent = { type: 'PaymentExpired', data: { userId, paymentId, orderId, reason: 'Payment timed out', occurredAt: afterExpiry.toISOString() } } as const;
    // The capture's clock read 12:10, but the expiry of 13:00 was appended first: the stream's times do not go back.
    const justAfterExpiry = new Date(afterExpiry.getTime() + 1).toISOString();
    spec
      .given([initiated, expiredEvent])
      .when(approved)
      .then([
        { ...captured, data: { ...captured.data, occurredAt: justAfterExpiry } },
        { ...credited, data: { ...credited.data, occurredAt: justAfterExpiry } },
      ]);
  });
});

describe('payments: ExpirePayment', () => {
  it('expires a payment still PENDING at its expiry with the classic reason', () => {
    spec
      .given([initiated])
      .when(expire(afterExpiry))
      .then([{ type: 'PaymentExpired', data: { userId, paymentId, orderId, reason: 'Payment timed out', occurredAt: afterExpiry.toISOString() } }]);
  });
  it('decides nothing before the expiry, for a captured payment, or a second time', () => {
    spec.given([initiated]).when(expire(later)).thenNothing();
    spec.given([initiated, captured, credited]).when(expire(afterExpiry)).thenNothing();
    const expiredEvent = { type: 'PaymentExpired', data: { userId, paymentId, orderId, reason: 'Payment timed out', occurredAt: afterExpiry.toISOString() } } as const;
    spec.given([initiated, expiredEvent]).when(expire(afterExpiry)).thenNothing();
  });
});

describe('payments: RequestRefund and RefundPayment', () => {
  const requestRefund: RequestRefund = { type: 'RequestRefund', data: { userId, paymentId, transactionId: 'tx-refund-request', now: later } };
  const requested: PaymentRefundRequested = { type: 'PaymentRefundRequested', data: { userId, paymentId, orderId, tokens: 100, occurredAt: later.toISOString() } };
  const refunded = (tokensDebited: number): TokenAccountEvent => ({
    type: 'PaymentRefunded',
    data: { userId, paymentId, orderId, providerRefundId: 'MOCK-REFUND-1', tokens: 100, tokensDebited, occurredAt: later.toISOString() },
  });
  const tokensRefunded = (amount: number, balanceAfter: number): TokensRefunded => ({
    type: 'TokensRefunded',
    data: {
      userId,
      transactionId: 'refund-tx',
      paymentId,
      amount,
      description: 'Refund of token package starter',
      balanceAfter,
      occurredAt: later.toISOString(),
      draws: [{ lotId: transactionId, amount }],
      heldAfter: 0,
    },
  });
  const use = (amount: number): TokenAccountCommand => ({ type: 'UseTokens', data: { userId, amount, description: null, transactionId: 'use', now: later } });

  it('records the request before the provider is called: REFUND_PENDING with its tokens reserved', () => {
    // Asked for in the capture's millisecond: recorded a millisecond after it (a request is always after the stream's latest event).
    spec
      .given([initiated, captured, credited])
      .when(requestRefund)
      .then([{ ...requested, data: { ...requested.data, occurredAt: new Date(later.getTime() + 1).toISOString() } }]);
    const pending = state([initiated, captured, credited, requested]);
    expect(pending.payments.get(paymentId)?.status).toBe('REFUND_PENDING');
    expect([pending.balance, pending.reservedForRefunds, availableBalance(pending)]).toEqual([100, 100, 0]);
  });
  it('refuses to spend tokens reserved for a pending refund, and spends the rest', () => {
    const funding = { lotId: 'funding', priority: LOT_PRIORITY_DEFAULT, expiresAt: null };
    const funded: TokensPurchased = { type: 'TokensPurchased', data: { ...credited.data, paymentId: 'other', transactionId: 'funding', balanceAfter: 140, amount: 40, lot: funding } };
    spec.given([initiated, captured, credited, requested]).when(use(1)).thenThrows('INSUFFICIENT_BALANCE', { balance: 100, available: 0, requested: 1 });
    // The refund's tokens are reserved in the purchase's lot, so the usage draws on the other one.
    const fromFunding = used(40, 100);
    spec
      .given([initiated, captured, credited, funded, requested])
      .when(use(40))
      .then([{ ...fromFunding, data: { ...fromFunding.data, draws: [{ lotId: 'funding', amount: 40 }] } }]);
  });
  it('refuses the request when the available balance no longer holds the tokens', () => {
    spec.given([initiated, captured, credited, used(1, 99)]).when(requestRefund).thenThrows('REFUND_EXCEEDS_BALANCE', { balance: 99, available: 99, requested: 100 });
  });
  it('decides no second request for a payment whose refund is pending or made, and refuses one never captured', () => {
    spec.given([initiated, captured, credited, requested]).when(requestRefund).thenNothing();
    spec.given([initiated, captured, credited, requested, refunded(100), tokensRefunded(100, 0)]).when(requestRefund).thenNothing();
    spec.given([initiated]).when(requestRefund).thenThrows('PAYMENT_NOT_CAPTURED');
  });
  it('records the provider refund of a pending request: the reserved tokens leave and the reservation ends', () => {
    spec.given([initiated, captured, credited, requested]).when(refund).then([refunded(100), tokensRefunded(100, 0)]);
    const done = state([initiated, captured, credited, requested, refunded(100), tokensRefunded(100, 0)]);
    expect([done.balance, done.reservedForRefunds, done.payments.get(paymentId)?.status]).toEqual([0, 0, 'REFUNDED']);
  });
  it('records a refund the provider made without a request of ours, taking back what is left', () => {
    spec.given([initiated, captured, credited]).when(refund).then([refunded(100), tokensRefunded(100, 0)]);
    spec.given([initiated, captured, credited, used(70, 30)]).when(refund).then([refunded(30), tokensRefunded(30, 0)]);
  });
  it('decides nothing for a second refund and refuses to refund a payment never captured', () => {
    spec.given([initiated, captured, credited, requested, refunded(100), tokensRefunded(100, 0)]).when(refund).thenNothing();
    spec.given([initiated]).when(refund).thenThrows('PAYMENT_NOT_CAPTURED');
  });
  it('captures nothing more for a payment whose refund is pending', () => {
    spec.given([initiated, captured, credited, requested]).when(approved).thenNothing();
    expect(captureDecision(state([initiated, captured, credited, requested]), paymentId, later)).toBe('done');
  });
  it('keeps the reservation through a snapshot', () => {
    const pending = state([initiated, captured, credited, requested]);
    const decoded = tokenAccountSnapshot.decode(JSON.parse(JSON.stringify(tokenAccountSnapshot.encode(pending))));
    expect(decoded.reservedForRefunds).toBe(100);
    expect(tokenAccountSnapshot.agreesWith(pending, requested)).toBe(true);
  });
});

describe('payments: FailRefund (the provider refund failed)', () => {
  const failedAt = new Date('2026-11-24T12:20:00.000Z');
  const fail = (reason = 'failed: expired_or_canceled_card', now = failedAt, requestedAt = later.toISOString()): FailRefund => ({
    type: 'FailRefund',
    data: { userId, paymentId, requestedAt, providerRefundId: 're_1', reason, transactionId: 'tx-refund-failed', now },
  });
  const failed: PaymentRefundFailed = {
    type: 'PaymentRefundFailed',
    data: { userId, paymentId, orderId, tokens: 100, providerRefundId: 're_1', reason: 'failed: expired_or_canceled_card', occurredAt: failedAt.toISOString() },
  };
  const use = (amount: number): TokenAccountCommand => ({ type: 'UseTokens', data: { userId, amount, description: null, transactionId: 'use', now: failedAt } });

  it('ends a pending request: the payment COMPLETED again, and the tokens it reserved spendable', () => {
    spec.given([initiated, captured, credited, refundRequested]).when(fail()).then([failed]);
    const after = state([initiated, captured, credited, refundRequested, failed]);
    expect([after.payments.get(paymentId)?.status, after.balance, after.reservedForRefunds, availableBalance(after)]).toEqual(['COMPLETED', 100, 0, 100]);
    spec.given([initiated, captured, credited, refundRequested, failed]).when(use(100)).then([{ ...used(100, 0), data: { ...used(100, 0).data, occurredAt: failedAt.toISOString() } }]);
  });

  it('decides nothing once the request ended (a second report), with no request, or once refunded; lets a refund be asked for again', () => {
    spec.given([initiated, captured, credited, refundRequested, failed]).when(fail()).thenNothing();
    spec.given([initiated, captured, credited]).when(fail()).thenNothing();
    spec.given([initiated, captured, credited, refundRequested, refunded100(), tokensRefunded100()]).when(fail()).thenNothing();
    // Asked for again on a clock behind the failure's: recorded a millisecond after it, so the two requests' times differ.
    spec
      .given([initiated, captured, credited, refundRequested, failed])
      .when(requestRefundCommand)
      .then([{ ...refundRequested, data: { ...refundRequested.data, occurredAt: new Date(failedAt.getTime() + 1).toISOString() } }]);
  });

  it('ends only the request the failure was learned for: a report about an earlier one decides nothing', () => {
    const secondRequest: PaymentRefundRequested = { ...refundRequested, data: { ...refundRequested.data, occurredAt: '2026-11-24T12:30:00.000Z' } };
    spec.given([initiated, captured, credited, refundRequested, failed, secondRequest]).when(fail('failed: unknown', new Date('2026-11-24T12:31:00.000Z'))).thenNothing();
    spec
      .given([initiated, captured, credited, refundRequested, failed, secondRequest])
      .when(fail('failed: unknown', new Date('2026-11-24T12:31:00.000Z'), '2026-11-24T12:30:00.000Z'))
      .then([{ ...failed, data: { ...failed.data, reason: 'failed: unknown', occurredAt: '2026-11-24T12:31:00.000Z' } }]);
  });

  it('times a request asked for again in the millisecond of the failure after it, so a late report of the first request ends nothing', () => {
    // The request, its failure and the next request all read 12:10:00.000 (a provider that refuses at once).
    const failedAtOnce: PaymentRefundFailed = { ...failed, data: { ...failed.data, occurredAt: later.toISOString() } };
    const again = new Date(later.getTime() + 1).toISOString();
    spec
      .given([initiated, captured, credited, refundRequested, failedAtOnce])
      .when(requestRefundCommand)
      .then([{ ...refundRequested, data: { ...refundRequested.data, occurredAt: again } }]);
    const secondRequest: PaymentRefundRequested = { ...refundRequested, data: { ...refundRequested.data, occurredAt: again } };
    spec.given([initiated, captured, credited, refundRequested, failedAtOnce, secondRequest]).when(fail('failed: unknown', later, later.toISOString())).thenNothing();
    spec
      .given([initiated, captured, credited, refundRequested, failedAtOnce, secondRequest])
      .when(fail('failed: unknown', later, again))
      .then([{ ...failed, data: { ...failed.data, reason: 'failed: unknown', occurredAt: new Date(later.getTime() + 2).toISOString() } }]);
  });

  it("times a request asked for in the millisecond of another payment's event after it too, and lets a failure share its request's millisecond", () => {
    const otherOpened: PaymentInitiated = { ...initiated, data: { ...initiated.data, paymentId: 'other', orderId: 'ORDER-2', occurredAt: failedAt.toISOString() } };
    spec
      .given([initiated, captured, credited, otherOpened])
      .when({ ...requestRefundCommand, data: { ...requestRefundCommand.data, now: failedAt } })
      .then([{ ...refundRequested, data: { ...refundRequested.data, occurredAt: new Date(failedAt.getTime() + 1).toISOString() } }]);
    spec
      .given([initiated, captured, credited, refundRequested])
      .when(fail('failed: unknown', later))
      .then([{ ...failed, data: { ...failed.data, reason: 'failed: unknown', occurredAt: later.toISOString() } }]);
  });

  it('keeps the tokens reserved while a dispute of the payment is open, and ends the request once the dispute is won', () => {
    const ids = { userId, paymentId, orderId, disputeId: 'dp_1' };
    const opened: TokenAccountEvent = { type: 'PaymentDisputeOpened', data: { ...ids, amount: 500, currency: 'USD', reason: 'fraudulent', occurredAt: later.toISOString() } };
    const won: TokenAccountEvent = { type: 'PaymentDisputeClosed', data: { ...ids, outcome: 'won', tokens: 0, tokensDebited: 0, shortfallAfter: 0, occurredAt: later.toISOString() } };
    spec.given([initiated, captured, credited, refundRequested, opened]).when(fail()).thenNothing();
    spec.given([initiated, captured, credited, refundRequested, opened, won]).when(fail()).then([failed]);
  });

  it('refuses a payment never captured and one it does not know', () => {
    spec.given([initiated]).when(fail()).thenThrows('PAYMENT_NOT_CAPTURED', { paymentId, paymentStatus: 'PENDING' });
    spec.given([]).when(fail()).thenThrows('PAYMENT_NOT_FOUND', { paymentId });
    expect(() => tokenAccountDecider.decide(fail(''), state([initiated, captured, credited, refundRequested]))).toThrow(LedgerInvariantViolation);
  });

  it("expires in the same append what it gives back to a lot already past its expiry", () => {
    const expiring = { ...credited, data: { ...credited.data, lot: { lotId: transactionId, priority: LOT_PRIORITY_DEFAULT, expiresAt: '2026-11-24T12:15:00.000Z' } } };
    const decided = tokenAccountDecider.decide(fail(), state([initiated, captured, expiring, refundRequested]));
    expect(decided.map((event) => [event.type, 'amount' in event.data ? event.data.amount : undefined])).toEqual([
      ['PaymentRefundFailed', undefined],
      ['LotExpired', 100],
    ]);
    expect(fold(tokenAccountDecider, state([initiated, captured, expiring, refundRequested]), decided).balance).toBe(0);
  });

  it('keeps the reason through a snapshot, and agrees with its event', () => {
    const after = state([initiated, captured, credited, refundRequested, failed]);
    const decoded = tokenAccountSnapshot.decode(JSON.parse(JSON.stringify(tokenAccountSnapshot.encode(after))));
    expect([decoded.payments.get(paymentId)?.refundFailure, decoded.reservedForRefunds, tokenAccountSnapshot.agreesWith(decoded, failed)]).toEqual(['failed: expired_or_canceled_card', 0, true]);
  });
});

const refunded100 = (): TokenAccountEvent => ({
  type: 'PaymentRefunded',
  data: { userId, paymentId, orderId, providerRefundId: 'MOCK-REFUND-1', tokens: 100, tokensDebited: 100, occurredAt: later.toISOString() },
});
const tokensRefunded100 = (): TokensRefunded => ({
  type: 'TokensRefunded',
  data: { userId, transactionId: 'refund-tx', paymentId, amount: 100, description: 'Refund of token package starter', balanceAfter: 0, occurredAt: later.toISOString(), draws: [{ lotId: transactionId, amount: 100 }], heldAfter: 0 },
});

describe('payments: AddTokens with a provider payment id', () => {
  it('refuses to credit a provider payment directly', () => {
    spec.given([initiated]).when({ type: 'AddTokens', data: { userId, paymentId, amount: 100, description: null, transactionId, now: later } }).thenThrows('PAYMENT_ID_REUSED');
  });
});

describe('payments: snapshot', () => {
  it('keeps payments through encode and decode, and agrees with the last payment event', () => {
    const events: TokenAccountEvent[] = [initiated, captured, credited];
    const folded = state(events);
    const decoded = tokenAccountSnapshot.decode(JSON.parse(JSON.stringify(tokenAccountSnapshot.encode(folded))));
    expect(decoded.payments.toJS()).toEqual(folded.payments.toJS());
    expect(tokenAccountSnapshot.agreesWith(state([initiated, captured]), captured)).toBe(true);
    expect(tokenAccountSnapshot.agreesWith(state([initiated]), captured)).toBe(false);
  });
});

describe('payments: what a late or repeated provider answer may not change', () => {
  const refunded: TokenAccountEvent = {
    type: 'PaymentRefunded',
    data: { userId, paymentId, orderId, providerRefundId: 'MOCK-REFUND-1', tokens: 100, tokensDebited: 100, occurredAt: later.toISOString() },
  };
  const takenBack: TokensRefunded = {
    type: 'TokensRefunded',
    data: {
      userId,
      transactionId: 'refund-tx',
      paymentId,
      amount: 100,
      description: 'Refund of token package starter',
      balanceAfter: 0,
      occurredAt: later.toISOString(),
      draws: [{ lotId: transactionId, amount: 100 }],
      heldAfter: 0,
    },
  };
  const history = [initiated, captured, credited, refunded, takenBack];

  it('credits nothing again when a refunded payment is reported captured (a late webhook)', () => {
    spec.given(history).when(approved).thenNothing();
    spec.given(history).when(capture({ status: 'declined', reason: 'card_declined' })).thenNothing();
    expect(captureDecision(state(history), paymentId, later)).toBe('done');
  });

  it('decides nothing for a second refund request (RequestRefund on a REFUNDED or REFUND_PENDING payment), so the provider is not asked twice', () => {
    spec.given(history).when(requestRefundCommand).thenNothing();
    spec.given([initiated, captured, credited, refundRequested]).when(requestRefundCommand).thenNothing();
  });

  it('records nothing when the provider declines a payment that already expired', () => {
    const expiredEvent: TokenAccountEvent = { type: 'PaymentExpired', data: { userId, paymentId, orderId, reason: 'Payment timed out', occurredAt: afterExpiry.toISOString() } };
    spec.given([initiated, expiredEvent]).when(capture({ status: 'declined', reason: 'card_declined' }, afterExpiry)).thenNothing();
  });

  it('refuses to record a capture whose tokens would take the balance past the maximum', () => {
    const nearMax: TokensPurchased = {
      type: 'TokensPurchased',
      data: { userId, transactionId: 'big', paymentId: 'external', amount: BALANCE_MAX - 99, description: null, balanceAfter: BALANCE_MAX - 99, occurredAt: startedAt.toISOString() },
    };
    spec.given([nearMax, initiated]).when(approved).thenThrows('BALANCE_OUT_OF_RANGE', { balance: BALANCE_MAX - 99, requested: 100 });
    const exactlyMax = { ...nearMax, data: { ...nearMax.data, amount: BALANCE_MAX - 100, balanceAfter: BALANCE_MAX - 100 } };
    spec
      .given([exactlyMax, initiated])
      .when(approved)
      .then([captured, { ...credited, data: { ...credited.data, balanceAfter: BALANCE_MAX } }]);
  });

  it('allows a capture up to the instant before expiry and refuses it from the expiry on', () => {
    const justBefore = new Date(expiresAt.getTime() - 1);
    expect(captureDecision(state([initiated]), paymentId, justBefore)).toBe('capture');
    expect(thrownCode(() => captureDecision(state([initiated]), paymentId, expiresAt))).toBe('PAYMENT_EXPIRED');
  });

  it('expires a payment exactly at its expiry, and not a millisecond before', () => {
    spec.given([initiated]).when(expire(new Date(expiresAt.getTime() - 1))).thenNothing();
    spec
      .given([initiated])
      .when(expire(expiresAt))
      .then([{ type: 'PaymentExpired', data: { userId, paymentId, orderId, reason: 'Payment timed out', occurredAt: expiresAt.toISOString() } }]);
  });

  it('refunds a payment whose tokens are all spent by recording the refund alone, debiting nothing', () => {
    const spentAll = used(100, 0);
    spec
      .given([initiated, captured, credited, spentAll])
      .when(refund)
      .then([{ type: 'PaymentRefunded', data: { userId, paymentId, orderId, providerRefundId: 'MOCK-REFUND-1', tokens: 100, tokensDebited: 0, occurredAt: later.toISOString() } }]);
  });

  it('allows a refund request when the balance holds exactly the payment tokens, spent from another lot', () => {
    const funded: TokensPurchased = {
      type: 'TokensPurchased',
      data: { ...credited.data, paymentId: 'other', transactionId: 'funding', amount: 5, balanceAfter: 105, lot: { lotId: 'funding', priority: LOT_PRIORITY_DEFAULT, expiresAt: null } },
    };
    const fromFunding = used(5, 100);
    const spentFromFunding: TokensUsed = { ...fromFunding, data: { ...fromFunding.data, draws: [{ lotId: 'funding', amount: 5 }] } };
    const asked = { ...requestRefundCommand, data: { ...requestRefundCommand.data, now: new Date(later.getTime() + 1) } };
    spec.given([initiated, captured, credited, funded, spentFromFunding]).when(asked).then([{ ...refundRequested, data: { ...refundRequested.data, occurredAt: asked.data.now.toISOString() } }]);
  });

  it('refuses a refund request with REFUND_EXCEEDS_LOT (since lots) when the balance holds the payment tokens but they were spent from the purchase lot', () => {
    const funded: TokensPurchased = {
      type: 'TokensPurchased',
      data: { ...credited.data, paymentId: 'other', transactionId: 'funding', amount: 5, balanceAfter: 105, lot: { lotId: 'funding', priority: LOT_PRIORITY_DEFAULT, expiresAt: null } },
    };
    spec
      .given([initiated, captured, credited, funded, used(5, 100)])
      .when(requestRefundCommand)
      .thenThrows('REFUND_EXCEEDS_LOT', { paymentId, lotId: transactionId, requested: 100, remaining: 95 });
  });
});

describe('payments: InitiatePayment repeated under the same id', () => {
  it.each<[string, Partial<InitiatePayment['data']>]>([
    ['another order', { orderId: 'MOCK-ORDER-2' }],
    ['another package', { packageId: 'pro' }],
    ['another number of tokens', { tokens: 101 }],
    ['another price', { amount: 501 }],
  ])('refuses the same payment id with %s', (_name, change) => {
    spec
      .given([initiated])
      .when({ ...initiate, data: { ...initiate.data, ...change } })
      .thenThrows('PAYMENT_ID_REUSED', { paymentId }, `payment ${paymentId} was already initiated with another order or package`);
  });

  it('decides nothing for a retry that arrives later, with a later expiry', () => {
    spec
      .given([initiated])
      .when({ ...initiate, data: { ...initiate.data, now: later, expiresAt: new Date(expiresAt.getTime() + 600_000) } })
      .thenNothing();
  });

  it('refuses a payment id credited directly, naming it', () => {
    const direct: TokensPurchased = { type: 'TokensPurchased', data: { ...credited.data, description: null } };
    spec.given([direct]).when(initiate).thenThrows('PAYMENT_ID_REUSED', { paymentId }, `payment ${paymentId} was already credited directly`);
  });
});

describe('payments: a package the catalogue could never offer is a bug, not a rejection', () => {
  const initiateWith = (change: Partial<InitiatePayment['data']>): InitiatePayment => ({ ...initiate, data: { ...initiate.data, ...change } });
  const violation = (change: Partial<InitiatePayment['data']>) => {
    try {
      tokenAccountDecider.decide(initiateWith(change), tokenAccountDecider.initialState);
    } catch (error) {
      return error;
    }
    return undefined;
  };

  it.each<[string, Partial<InitiatePayment['data']>]>([
    ['no tokens', { tokens: 0 }],
    ['a price of 0', { amount: 0 }],
    ['a fractional price', { amount: 4.5 }],
    ['a currency of four letters', { currency: 'USDX' }],
    ['a currency in lower case', { currency: 'usd' }],
    ['an expiry at its start', { expiresAt: startedAt }],
    ['an expiry before its start', { expiresAt: new Date(startedAt.getTime() - 1) }],
  ])('stops on a package with %s', (_name, change) => {
    expect(violation(change)).toBeInstanceOf(LedgerInvariantViolation);
  });

  it('accepts the smallest price, one token and an expiry a millisecond after the start', () => {
    const smallest = { tokens: 1, amount: 1, expiresAt: new Date(startedAt.getTime() + 1) };
    spec
      .given([])
      .when(initiateWith(smallest))
      .then([{ ...initiated, data: { ...initiated.data, tokens: 1, amount: 1, expiresAt: smallest.expiresAt.toISOString() } }]);
  });
});

describe('payments: what a refused request tells the client (code, details and the problem detail)', () => {
  it('a capture of an unknown payment', () => {
    spec.given([]).when(approved).thenThrows('PAYMENT_NOT_FOUND', { paymentId }, `payment ${paymentId} does not exist on this account`);
  });

  it('a capture request for a declined payment, with the provider reason', () => {
    const declined = state([initiated, { type: 'PaymentFailed', data: { userId, paymentId, orderId, reason: 'card_declined', occurredAt: later.toISOString() } }]);
    expect(thrown(() => captureDecision(declined, paymentId, later))).toMatchObject({
      code: 'PAYMENT_DECLINED',
      details: { paymentId, reason: 'card_declined' },
      message: `payment ${paymentId} was declined: card_declined`,
    });
  });

  it('a capture request for an expired payment, with its expiry', () => {
    expect(thrown(() => captureDecision(state([initiated]), paymentId, afterExpiry))).toMatchObject({
      code: 'PAYMENT_EXPIRED',
      details: { paymentId, expiresAt: expiresAt.toISOString() },
      message: `payment ${paymentId} expired at ${expiresAt.toISOString()}`,
    });
  });

  it('a refund of a payment never captured, with its status', () => {
    const message = `payment ${paymentId} is PENDING; only a captured payment can be refunded`;
    spec.given([initiated]).when(refund).thenThrows('PAYMENT_NOT_CAPTURED', { paymentId, paymentStatus: 'PENDING' }, message);
    spec.given([initiated]).when(requestRefundCommand).thenThrows('PAYMENT_NOT_CAPTURED', { paymentId, paymentStatus: 'PENDING' }, message);
  });

  it('a refund request the available balance no longer covers, with the balance, the available tokens and the tokens it would take', () => {
    spec
      .given([initiated, captured, credited, used(1, 99)])
      .when(requestRefundCommand)
      .thenThrows('REFUND_EXCEEDS_BALANCE', { paymentId, balance: 99, available: 99, requested: 100 }, `refunding payment ${paymentId} would take back 100 tokens from an available balance of 99`);
  });

  it('a direct credit under a provider payment id', () => {
    spec
      .given([initiated])
      .when({ type: 'AddTokens', data: { userId, paymentId, amount: 100, description: null, transactionId, now: later } })
      .thenThrows('PAYMENT_ID_REUSED', { paymentId, creditedAmount: null, requestedAmount: 100 }, `payment ${paymentId} is a provider payment; it is credited by its capture`);
  });
});

function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('payments: a state no stream can produce is refused, never decided on', () => {
  it('refuses to send a capture for a payment in a status it does not know', () => {
    const known = state([initiated]);
    const corrupt = { ...known, payments: known.payments.set(paymentId, { ...(known.payments.get(paymentId) as Payment), status: 'SETTLED' as Payment['status'] }) };
    const error = thrown(() => captureDecision(corrupt, paymentId, later));
    // A bug or corrupt data, not a rejection a client could act on.
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(LedgerError);
  });

  it('tells a client that a declined payment gave no reason when the provider gave none', () => {
    const declined = state([initiated, { type: 'PaymentFailed', data: { userId, paymentId, orderId, reason: 'card_declined', occurredAt: later.toISOString() } }]);
    const withoutReason = { ...declined, payments: declined.payments.set(paymentId, { ...(declined.payments.get(paymentId) as Payment), failureReason: null }) };
    expect(thrown(() => captureDecision(withoutReason, paymentId, later))).toMatchObject({
      code: 'PAYMENT_DECLINED',
      details: { paymentId, reason: null },
      message: `payment ${paymentId} was declined: no reason given`,
    });
  });
});


describe('payments: guards a caller cannot pass, and what clients read', () => {
  it('fails loudly on a cap of open payments that is not a positive integer (a configuration error)', () => {
    for (const pendingPaymentsMax of [0, 1.5]) {
      expect(() => tokenAccountDecider.decide({ ...initiate, data: { ...initiate.data, pendingPaymentsMax } }, tokenAccountDecider.initialState)).toThrow(LedgerInvariantViolation);
    }
    spec.given([]).when({ ...initiate, data: { ...initiate.data, pendingPaymentsMax: 1 } }).then([initiated]);
  });

  it("fails loudly on a package's lot terms out of range: priority, or a lifetime that is not a whole number of days from 1", () => {
    const withTerms = (lot: CapturePayment['data']['lot']): CapturePayment => ({ ...approved, data: { ...approved.data, lot } });
    for (const lot of [
      { priority: -1, expiresInDays: null },
      { priority: LOT_PRIORITY_MAX + 1, expiresInDays: null },
      { priority: 10, expiresInDays: 0 },
      { priority: 10, expiresInDays: 1.5 },
    ]) {
      expect(() => tokenAccountDecider.decide(withTerms(lot), state([initiated]))).toThrow(LedgerInvariantViolation);
    }
    const [, purchase] = tokenAccountDecider.decide(withTerms({ priority: 10, expiresInDays: 1 }), state([initiated]));
    expect(purchase?.type === 'TokensPurchased' && purchase.data.lot).toEqual({ lotId: transactionId, priority: 10, expiresAt: new Date(later.getTime() + 86_400_000).toISOString() });
  });

  it('tells the client why a payment or a refund request is refused (the problem detail)', () => {
    const one = { ...initiate, data: { ...initiate.data, pendingPaymentsMax: 1 } };
    spec
      .given([initiated])
      .when({ ...one, data: { ...one.data, paymentId: '33333333-3333-4333-8333-333333333333', orderId: 'order-2' } })
      .thenThrows('TOO_MANY_PENDING_PAYMENTS', { pending: 1, max: 1 }, 'the user has 1 open payments, the most allowed; capture or let one expire first');
    const opened: TokenAccountEvent = {
      type: 'PaymentDisputeOpened',
      data: { userId, paymentId, orderId, disputeId: 'dp_1', amount: 500, currency: 'USD', reason: 'fraudulent', occurredAt: later.toISOString() },
    };
    spec
      .given([initiated, captured, credited, opened])
      .when(requestRefundCommand)
      .thenThrows('PAYMENT_DISPUTED', { disputeId: 'dp_1' }, `payment ${paymentId} has dispute dp_1 (open); its money goes back through the dispute`);
    const funded: TokensPurchased = {
      type: 'TokensPurchased',
      data: { ...credited.data, paymentId: 'other', transactionId: 'funding', amount: 5, balanceAfter: 105, lot: { lotId: 'funding', priority: LOT_PRIORITY_DEFAULT, expiresAt: null } },
    };
    spec
      .given([initiated, captured, credited, funded, used(5, 100)])
      .when(requestRefundCommand)
      .thenThrows('REFUND_EXCEEDS_LOT', { requested: 100, remaining: 95 }, `payment ${paymentId} credited 100 tokens to lot ${transactionId}, of which 95 are left unheld`);
  });

  it('tells the client how many tokens a pending refund reserves when it refuses a usage', () => {
    const funded: TokensPurchased = {
      type: 'TokensPurchased',
      data: { ...credited.data, paymentId: 'other', transactionId: 'funding', amount: 40, balanceAfter: 140, lot: { lotId: 'funding', priority: LOT_PRIORITY_DEFAULT, expiresAt: null } },
    };
    spec
      .given([initiated, captured, credited, funded, refundRequested])
      .when({ type: 'UseTokens', data: { userId, amount: 41, description: null, transactionId: 'use', now: later } })
      .thenThrows('INSUFFICIENT_BALANCE', { balance: 140, available: 40, requested: 41 }, 'the balance 140 (100 reserved for refunds) is less than the 41 tokens requested');
  });

  it('takes nothing again on a refund after a lost dispute, though the purchase (written before lots) shares its lot with other credit', () => {
    // Before lots every credit went to the opening lot: after the chargeback it still holds the other purchase's 100.
    const withoutLot = (event: TokensPurchased): TokensPurchased => {
      const { lot: _lot, heldAfter: _heldAfter, ...data } = event.data;
      return { ...event, data };
    };
    const other = withoutLot({ ...credited, data: { ...credited.data, paymentId: 'direct-1', transactionId: 'direct-tx', balanceAfter: 200 } });
    const lost: TokenAccountEvent[] = [
      { type: 'PaymentDisputeOpened', data: { userId, paymentId, orderId, disputeId: 'dp_1', amount: 500, currency: 'USD', reason: 'fraudulent', occurredAt: later.toISOString() } },
      { type: 'PaymentDisputeClosed', data: { userId, paymentId, orderId, disputeId: 'dp_1', outcome: 'lost', tokens: 100, tokensDebited: 100, shortfallAfter: 0, occurredAt: later.toISOString() } },
      {
        type: 'TokensChargedBack',
        data: { userId, transactionId: 'dispute-tx', paymentId, disputeId: 'dp_1', amount: 100, description: 'Chargeback', balanceAfter: 100, heldAfter: 0, draws: [{ lotId: 'opening', amount: 100 }], occurredAt: later.toISOString() },
      },
    ];
    spec
      .given([initiated, captured, withoutLot(credited), other, ...lost])
      .when(refund)
      .then([{ type: 'PaymentRefunded', data: { userId, paymentId, orderId, providerRefundId: 'MOCK-REFUND-1', tokens: 100, tokensDebited: 0, occurredAt: later.toISOString() } }]);
  });
});
