import { fold } from '../decider.js';
import { LedgerInvariantViolation } from '../ledger.errors.js';
import { BALANCE_MAX, LOT_PRIORITY_DEFAULT } from '../ledger.limits.js';
import { deciderSpecification } from '../testing/decider-specification.js';
import type { RecordDispute } from './dispute.commands.js';
import { DISPUTE_LOST_REASON } from './dispute.decide.js';
import { SHORTFALL_COVERED_DESCRIPTION, type PaymentDisputeClosed, type PaymentDisputeOpened, type ShortfallCovered, type TokensChargedBack } from './dispute.events.js';
import { derivedTransactionId } from './lot.state.js';
import type { PaymentCaptured, PaymentInitiated } from './payment.events.js';
import type { TokenAccountCommand } from './token-account.commands.js';
import { tokenAccountDecider } from './token-account.decider.js';
import type { TokenAccountEvent, TokensPurchased, TokensUsed } from './token-account.events.js';
import { tokenAccountSnapshot } from './token-account.snapshot.js';
import type { TokensGranted, TokensHeld } from './hold.events.js';

const userId = '11111111-1111-4111-8111-111111111111';
const paymentId = '22222222-2222-4222-8222-222222222222';
const orderId = 'pi_1';
const purchaseLot = 'purchase-tx';
const disputeId = 'dp_1';
const startedAt = new Date('2026-11-24T12:00:00.000Z');
const capturedAt = new Date('2026-11-24T12:10:00.000Z');
const disputedAt = new Date('2026-11-25T09:00:00.000Z');
const closedAt = new Date('2026-12-20T09:00:00.000Z');
const spec = deciderSpecification(tokenAccountDecider);

const initiated: PaymentInitiated = {
  type: 'PaymentInitiated',
  data: { userId, paymentId, orderId, packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'stripe', occurredAt: startedAt.toISOString(), expiresAt: '2026-11-24T13:00:00.000Z' },
};
const captured: PaymentCaptured = { type: 'PaymentCaptured', data: { userId, paymentId, orderId, providerTransactionId: 'ch_1', occurredAt: capturedAt.toISOString() } };
const purchased: TokensPurchased = {
  type: 'TokensPurchased',
  data: {
    userId,
    transactionId: purchaseLot,
    paymentId,
    amount: 100,
    description: 'Token package starter',
    balanceAfter: 100,
    occurredAt: capturedAt.toISOString(),
    lot: { lotId: purchaseLot, priority: LOT_PRIORITY_DEFAULT, expiresAt: null },
    heldAfter: 0,
  },
};
const paid = [initiated, captured, purchased];
const granted = (amount: number, balanceAfter: number, heldAfter = 0): TokensGranted => ({
  type: 'TokensGranted',
  data: { userId, transactionId: 'grant-tx', amount, reason: 'Welcome', lot: { lotId: 'grant-tx', priority: 10, expiresAt: null }, balanceAfter, heldAfter, occurredAt: capturedAt.toISOString() },
});
const used = (amount: number, balanceAfter: number, draws = [{ lotId: purchaseLot, amount }]): TokensUsed => ({
  type: 'TokensUsed',
  data: { userId, transactionId: 'use-tx', amount, description: null, balanceAfter, occurredAt: capturedAt.toISOString(), draws, heldAfter: 0 },
});

function dispute(status: RecordDispute['data']['status'], now = status === 'open' ? disputedAt : closedAt, id = disputeId): RecordDispute {
  return { type: 'RecordDispute', data: { userId, paymentId, disputeId: id, status, amount: 500, currency: 'USD', reason: 'fraudulent', transactionId: 'dispute-tx', now } };
}
const opened: PaymentDisputeOpened = {
  type: 'PaymentDisputeOpened',
  data: { userId, paymentId, orderId, disputeId, amount: 500, currency: 'USD', reason: 'fraudulent', occurredAt: disputedAt.toISOString() },
};
const closed = (outcome: 'won' | 'lost', tokens: number, tokensDebited: number, shortfallAfter: number, at = closedAt): PaymentDisputeClosed => ({
  type: 'PaymentDisputeClosed',
  data: { userId, paymentId, orderId, disputeId, outcome, tokens, tokensDebited, shortfallAfter, occurredAt: at.toISOString() },
});
const chargedBack = (amount: number, balanceAfter: number, draws: TokensChargedBack['data']['draws'], heldAfter = 0): TokensChargedBack => ({
  type: 'TokensChargedBack',
  data: {
    userId,
    transactionId: 'dispute-tx',
    paymentId,
    disputeId,
    amount,
    description: `Chargeback of token package starter (dispute ${disputeId})`,
    balanceAfter,
    heldAfter,
    draws,
    occurredAt: closedAt.toISOString(),
  },
});
const state = (events: readonly TokenAccountEvent[]) => fold(tokenAccountDecider, tokenAccountDecider.initialState, events);

describe('disputes: recorded by dispute id, in any order', () => {
  it('records an opened dispute and moves no tokens', () => {
    spec.given(paid).when(dispute('open')).then([opened]);
  });

  it('decides nothing for a repeated open, a repeated close or an open that arrives after the close', () => {
    spec.given([...paid, opened]).when(dispute('open')).thenNothing();
    spec.given([...paid, opened, closed('won', 0, 0, 0)]).when(dispute('won')).thenNothing();
    spec.given([...paid, opened, closed('won', 0, 0, 0)]).when(dispute('open')).thenNothing();
    spec.given([...paid, opened, closed('lost', 100, 100, 0), chargedBack(100, 0, [{ lotId: purchaseLot, amount: 100 }])]).when(dispute('lost')).thenNothing();
  });

  it('keeps the first close: a closed dispute reported with another outcome decides nothing', () => {
    spec.given([...paid, opened, closed('won', 0, 0, 0)]).when(dispute('lost')).thenNothing();
  });

  it('records the opening with the close when the close arrives first', () => {
    spec
      .given(paid)
      .when(dispute('lost'))
      .then([{ ...opened, data: { ...opened.data, occurredAt: closedAt.toISOString() } }, closed('lost', 100, 100, 0), chargedBack(100, 0, [{ lotId: purchaseLot, amount: 100 }])]);
  });

  it('takes nothing when the dispute is won', () => {
    spec.given([...paid, opened]).when(dispute('won')).then([closed('won', 0, 0, 0)]);
  });

  it('refuses a dispute of a payment not captured (PAYMENT_NOT_CAPTURED) or unknown (PAYMENT_NOT_FOUND)', () => {
    spec.given([initiated]).when(dispute('open')).thenThrows('PAYMENT_NOT_CAPTURED', { paymentId, paymentStatus: 'PENDING' });
    spec.given([]).when(dispute('open')).thenThrows('PAYMENT_NOT_FOUND', { paymentId });
  });
});

describe('disputes: a lost dispute takes the purchase back', () => {
  it('debits the purchase lot first, then the other lots in draw-down order', () => {
    // 60 of the purchase spent; a grant of 50 holds the rest the dispute takes.
    const history = [...paid, granted(50, 150), used(60, 90), opened];
    spec
      .given(history)
      .when(dispute('lost'))
      .then([
        closed('lost', 100, 90, 10),
        chargedBack(90, 0, [
          { lotId: purchaseLot, amount: 40 },
          { lotId: 'grant-tx', amount: 50 },
        ]),
      ]);
  });

  it('records the part the account no longer holds as its shortfall', () => {
    const after = state([...paid, used(70, 30), opened, closed('lost', 100, 30, 70), chargedBack(30, 0, [{ lotId: purchaseLot, amount: 30 }])]);
    expect({ balance: after.balance, shortfall: after.shortfall }).toEqual({ balance: 0, shortfall: 70 });
  });

  it('leaves held tokens with their hold: only free tokens are taken', () => {
    const held: TokensHeld = {
      type: 'TokensHeld',
      data: { userId, holdId: 'hold-1', amount: 30, description: null, expiresAt: '2026-12-31T00:00:00.000Z', draws: [{ lotId: purchaseLot, amount: 30 }], balanceAfter: 100, heldAfter: 30, occurredAt: capturedAt.toISOString() },
    };
    spec
      .given([...paid, held, opened])
      .when(dispute('lost'))
      .then([closed('lost', 100, 70, 30), chargedBack(70, 30, [{ lotId: purchaseLot, amount: 70 }], 30)]);
  });

  it('takes nothing more of a payment a refund already took back', () => {
    const refunded: TokenAccountEvent[] = [
      { type: 'PaymentRefunded', data: { userId, paymentId, orderId, providerRefundId: 're_1', tokens: 100, tokensDebited: 100, occurredAt: capturedAt.toISOString() } },
      { type: 'TokensRefunded', data: { userId, transactionId: 'refund-tx', paymentId, amount: 100, description: null, balanceAfter: 0, occurredAt: capturedAt.toISOString(), draws: [{ lotId: purchaseLot, amount: 100 }], heldAfter: 0 } },
    ];
    spec.given([...paid, ...refunded, opened]).when(dispute('lost')).then([closed('lost', 0, 0, 0)]);
  });

  it('refuses a refund of a payment with an open or lost dispute (PAYMENT_DISPUTED), and allows one after a won dispute', () => {
    const request: TokenAccountCommand = { type: 'RequestRefund', data: { userId, paymentId, transactionId: 'tx-refund-request', now: closedAt } };
    spec.given([...paid, opened]).when(request).thenThrows('PAYMENT_DISPUTED', { paymentId, disputeId, disputeStatus: 'open' });
    // Asked for in the millisecond the dispute closed: recorded a millisecond after it, as every refund request (ADR 0031).
    const requestedAt = new Date(closedAt.getTime() + 1).toISOString();
    spec.given([...paid, opened, closed('won', 0, 0, 0)]).when(request).then([{ type: 'PaymentRefundRequested', data: { userId, paymentId, orderId, tokens: 100, occurredAt: requestedAt } }]);
  });

  it("refunds another payment of the account: only the disputed payment's own refund is refused", () => {
    const otherPaymentId = '33333333-3333-4333-8333-333333333333';
    const other = (event: PaymentInitiated | PaymentCaptured | TokensPurchased) => ({ ...event, data: { ...event.data, paymentId: otherPaymentId, orderId: 'pi_2' } }) as TokenAccountEvent;
    const otherPurchase = { ...purchased, data: { ...purchased.data, transactionId: 'other-tx', balanceAfter: 200, lot: { lotId: 'other-tx', priority: LOT_PRIORITY_DEFAULT, expiresAt: null } } };
    const history = [...paid, other(initiated), other(captured), other(otherPurchase), opened];
    const request: TokenAccountCommand = { type: 'RequestRefund', data: { userId, paymentId: otherPaymentId, transactionId: 'tx-refund-request', now: closedAt } };
    spec.given(history).when(request).then([{ type: 'PaymentRefundRequested', data: { userId, paymentId: otherPaymentId, orderId: 'pi_2', tokens: 100, occurredAt: closedAt.toISOString() } }]);
  });

  it('takes back the purchase lot first even when another lot comes before it in draw-down order', () => {
    // The grant is older than the purchase and drawn first by usage; the chargeback still starts with the purchase's lot.
    const grantFirst: TokensGranted = { ...granted(50, 50), data: { ...granted(50, 50).data, lot: { lotId: 'grant-tx', priority: 10, expiresAt: null } } };
    const purchasedAfter: TokensPurchased = { ...purchased, data: { ...purchased.data, balanceAfter: 150 } };
    const history = [grantFirst, initiated, captured, purchasedAfter, opened];
    spec
      .given(history)
      .when(dispute('lost'))
      .then([closed('lost', 100, 100, 0), chargedBack(100, 50, [{ lotId: purchaseLot, amount: 100 }])]);
  });

  it('takes nothing again when the provider reports a refund of a payment whose dispute was lost', () => {
    const history = [...paid, opened, closed('lost', 100, 100, 0), chargedBack(100, 0, [{ lotId: purchaseLot, amount: 100 }])];
    spec
      .given(history)
      .when({ type: 'RefundPayment', data: { userId, paymentId, providerRefundId: 're_1', transactionId: 'refund-tx', now: closedAt } })
      .then([{ type: 'PaymentRefunded', data: { userId, paymentId, orderId, providerRefundId: 're_1', tokens: 100, tokensDebited: 0, occurredAt: closedAt.toISOString() } }]);
  });

  it('takes nothing again, and owes nothing again, when a second dispute of the payment is lost', () => {
    // The first lost dispute took 40 and owes 60; a second dispute of the same charge (another id)
    // must not take or owe the purchase's 100 once more. A grant's 50 shows nothing more is taken.
    const secondId = 'dp_2';
    const firstLost = [...paid, used(60, 40), opened, closed('lost', 100, 40, 60), chargedBack(40, 0, [{ lotId: purchaseLot, amount: 40 }])];
    const secondOpened: PaymentDisputeOpened = { ...opened, data: { ...opened.data, disputeId: secondId } };
    const secondLost = (at: Date): PaymentDisputeClosed => ({ ...closed('lost', 0, 0, 60, at), data: { ...closed('lost', 0, 0, 60, at).data, disputeId: secondId } });
    const later = new Date('2026-12-21T09:00:00.000Z');
    spec
      .given([...firstLost, secondOpened])
      .when(dispute('lost', later, secondId))
      .then([secondLost(later)]);
    // Reported lost before it was reported open: the opening and the close, and still nothing taken.
    spec
      .given(firstLost)
      .when(dispute('lost', later, secondId))
      .then([{ ...secondOpened, data: { ...secondOpened.data, occurredAt: later.toISOString() } }, secondLost(later)]);
  });
});

describe('disputes: a dispute of part of the price takes that share of the tokens', () => {
  const lostFor = (amount: number, currency = 'USD'): RecordDispute => ({ ...dispute('lost'), data: { ...dispute('lost').data, amount, currency } });

  it('takes 10 of the 100 tokens for 50 of the 500 cents, the purchase lot first', () => {
    spec
      .given([...paid, opened])
      .when(lostFor(50))
      .then([closed('lost', 10, 10, 0), chargedBack(10, 90, [{ lotId: purchaseLot, amount: 10 }])]);
  });

  it.each([
    [1, 1],
    [5, 1],
    [6, 2],
    [51, 11],
    [499, 100],
    [500, 100],
    [501, 100],
  ])('rounds a share up: %i of 500 cents takes %i of 100 tokens', (amount, tokens) => {
    const [close] = tokenAccountDecider.decide(lostFor(amount), state([...paid, opened]));
    expect(close?.data).toMatchObject({ outcome: 'lost', tokens });
  });

  it.each([
    [350, 150, 100],
    [350, 151, 100],
    [350, 149, 70],
    [50, 0, 10],
    [499, 1, 100],
  ])('of %i cents after refunds of part of the price returned %i: takes %i of 100 tokens (all of them once the merchant kept none of the money)', (amount, refundedBefore, tokens) => {
    const [close] = tokenAccountDecider.decide({ ...lostFor(amount), data: { ...lostFor(amount).data, refundedBefore } }, state([...paid, opened]));
    expect(close?.data).toMatchObject({ outcome: 'lost', tokens });
  });

  it.each([-1, 0.5, Number.MAX_SAFE_INTEGER + 1, Number.NaN])('refuses %p refunded before as not an amount of money', (refundedBefore) => {
    expect(() => tokenAccountDecider.decide({ ...lostFor(50), data: { ...lostFor(50).data, refundedBefore } }, state([...paid, opened]))).toThrow(/refunded before is not an amount of money/);
  });

  it('takes everything for a dispute in another currency than the payment (which Stripe does not report)', () => {
    const [close] = tokenAccountDecider.decide(lostFor(50, 'EUR'), state([...paid, opened]));
    expect(close?.data).toMatchObject({ tokens: 100 });
  });

  it('owes the share of a payment of BALANCE_MAX tokens exactly, past 2^53 in the product', () => {
    const big: TokenAccountEvent[] = [
      { ...initiated, data: { ...initiated.data, tokens: BALANCE_MAX } },
      captured,
      { ...purchased, data: { ...purchased.data, amount: BALANCE_MAX, balanceAfter: BALANCE_MAX } },
      opened,
    ];
    const [close] = tokenAccountDecider.decide(lostFor(499), state(big));
    expect(close?.data).toMatchObject({ tokens: Number((BigInt(BALANCE_MAX) * 499n + 499n) / 500n) });
  });

  describe('of a payment whose refund is pending (the provider refuses to refund a disputed charge)', () => {
    const requested: TokenAccountEvent = { type: 'PaymentRefundRequested', data: { userId, paymentId, orderId, tokens: 100, occurredAt: capturedAt.toISOString() } };
    const ended: TokenAccountEvent = {
      type: 'PaymentRefundFailed',
      data: { userId, paymentId, orderId, tokens: 100, providerRefundId: null, reason: `${DISPUTE_LOST_REASON} ${disputeId}`, occurredAt: closedAt.toISOString() },
    };
    const openedFor51: TokenAccountEvent = { ...opened, data: { ...opened.data, amount: 51 } };

    it('ends the refund request as failed and takes the share: the buyer keeps the tokens of the money the merchant kept', () => {
      const decided = [ended, closed('lost', 11, 11, 0), chargedBack(11, 89, [{ lotId: purchaseLot, amount: 11 }])];
      spec.given([...paid, requested, openedFor51]).when(lostFor(51)).then(decided);
      const after = state([...paid, requested, openedFor51, ...decided]);
      expect({ balance: after.balance, reserved: after.reservedForRefunds, shortfall: after.shortfall, payment: after.payments.get(paymentId), lot: after.lots.get(purchaseLot) }).toMatchObject({
        balance: 89,
        reserved: 0,
        shortfall: 0,
        payment: { status: 'COMPLETED', refundFailure: 'dispute lost: dp_1' },
        lot: { remaining: 89, reserved: 0 },
      });
      // Reported lost before it was reported open: the opening first.
      spec.given([...paid, requested]).when(lostFor(51)).then([{ ...openedFor51, data: { ...openedFor51.data, occurredAt: closedAt.toISOString() } }, ...decided]);
      // No refund can be asked for again: the money went back through the dispute, or stays.
      spec.given([...paid, requested, openedFor51, ...decided]).when({ type: 'RequestRefund', data: { userId, paymentId, transactionId: 'refund-2', now: closedAt } }).thenThrows('PAYMENT_DISPUTED', { disputeStatus: 'lost' });
    });

    it('ends the request and takes every token when an operator had refunded the rest of the price before (the merchant kept none of the money)', () => {
      const [failed, close, chargeback] = tokenAccountDecider.decide({ ...lostFor(51), data: { ...lostFor(51).data, refundedBefore: 449 } }, state([...paid, requested, openedFor51]));
      expect([failed?.type, close?.data, chargeback?.data]).toMatchObject(['PaymentRefundFailed', { outcome: 'lost', tokens: 100, tokensDebited: 100 }, { amount: 100, balanceAfter: 0 }]);
    });

    it('still completes the request under the refund the provider holds of it, which counts in what it says was refunded', () => {
      const [refunded] = tokenAccountDecider.decide(
        { ...lostFor(51), data: { ...lostFor(51).data, refundedBefore: 500, refundAtProvider: { requestedAt: capturedAt.toISOString(), refundId: 're_held' } } },
        state([...paid, requested, openedFor51]),
      );
      expect(refunded).toMatchObject({ type: 'PaymentRefunded', data: { providerRefundId: 're_held' } });
    });

    it('takes the share from the other lots, or owes it, when the purchase lot expired while its refund was pending', () => {
      const expiring: TokenAccountEvent[] = [initiated, captured, { ...purchased, data: { ...purchased.data, lot: { lotId: purchaseLot, priority: LOT_PRIORITY_DEFAULT, expiresAt: disputedAt.toISOString() } } }];
      const events = tokenAccountDecider.decide(lostFor(51), state([...expiring, requested, granted(5, 105), openedFor51]));
      // The released reservation expires in the same append; the grant's 5 pay part, 6 are owed.
      expect(events.map((event) => event.type)).toEqual(['PaymentRefundFailed', 'PaymentDisputeClosed', 'TokensChargedBack', 'LotExpired']);
      expect(events[1]?.data).toMatchObject({ tokens: 11, tokensDebited: 5, shortfallAfter: 6 });
      expect(events[2]?.data).toMatchObject({ amount: 5, draws: [{ lotId: 'grant-tx', amount: 5 }] });
      expect(events[3]?.data).toMatchObject({ lotId: purchaseLot, amount: 100 });
    });

    it('lets a refund the provider makes afterwards take the rest that is free: what was spent or is held stays', () => {
      const decided = [ended, closed('lost', 11, 11, 0), chargedBack(11, 89, [{ lotId: purchaseLot, amount: 11 }])];
      const refund = { type: 'RefundPayment', data: { userId, paymentId, providerRefundId: 're_1', transactionId: 'refund-tx', now: closedAt } } as const;
      spec
        .given([...paid, requested, openedFor51, ...decided])
        .when(refund)
        .then([
          { type: 'PaymentRefunded', data: { userId, paymentId, orderId, providerRefundId: 're_1', tokens: 100, tokensDebited: 89, occurredAt: closedAt.toISOString() } },
          {
            type: 'TokensRefunded',
            data: { userId, transactionId: 'refund-tx', paymentId, amount: 89, description: 'Refund of token package starter', balanceAfter: 0, occurredAt: closedAt.toISOString(), draws: [{ lotId: purchaseLot, amount: 89 }], heldAfter: 0 },
          },
        ]);
      // Of the 89, what was spent since stays spent, and what a hold holds stays with it: nothing is held back after a lost dispute.
      const held: TokensHeld = {
        type: 'TokensHeld',
        data: { userId, holdId: 'hold-1', amount: 30, description: null, expiresAt: '2026-12-31T00:00:00.000Z', draws: [{ lotId: purchaseLot, amount: 30 }], balanceAfter: 39, heldAfter: 30, occurredAt: closedAt.toISOString() },
      };
      const [refunded] = tokenAccountDecider.decide(refund, state([...paid, requested, openedFor51, ...decided, used(50, 39), held]));
      expect(refunded?.data).toEqual(expect.objectContaining({ tokensDebited: 9 }));
      expect(refunded?.data).not.toHaveProperty('heldBack');
    });

    it('completes the refund instead, under its id, when the provider holds a refund of the request pending (made before the dispute, pending or not yet recorded): it returns the rest of the money', () => {
      const atProvider = (requestedAt: string): RecordDispute => ({ ...lostFor(51), data: { ...lostFor(51).data, refundAtProvider: { requestedAt, refundId: 're_1' } } });
      const events = tokenAccountDecider.decide(atProvider(capturedAt.toISOString()), state([...paid, requested, openedFor51]));
      expect(events.map((event) => event.type)).toEqual(['PaymentRefunded', 'TokensRefunded', 'PaymentDisputeClosed']);
      expect(events[0]?.data).toMatchObject({ providerRefundId: 're_1', tokensDebited: 100 });
      // Read for an earlier request (it ended, and the one pending now was refused): none of this one.
      expect(tokenAccountDecider.decide(atProvider('2026-11-24T12:09:59.999Z'), state([...paid, requested, openedFor51])).map((event) => event.type)).toEqual(['PaymentRefundFailed', 'PaymentDisputeClosed', 'TokensChargedBack']);
      // A dispute of the whole price completes the refund under its own id whatever the provider holds: all the money went back through it.
      const whole: RecordDispute = { ...dispute('lost'), data: { ...dispute('lost').data, refundAtProvider: { requestedAt: capturedAt.toISOString(), refundId: 're_1' } } };
      expect(tokenAccountDecider.decide(whole, state([...paid, requested, opened]))[0]?.data).toMatchObject({ providerRefundId: disputeId });
    });

    it('completes the refund for a share that is every token (499 of 500 cents), as for the whole price', () => {
      expect(tokenAccountDecider.decide(lostFor(499), state([...paid, requested, opened])).map((event) => event.type)).toEqual(['PaymentRefunded', 'TokensRefunded', 'PaymentDisputeClosed']);
    });
  });

  it('takes from a refunded payment what its refund could not take back, whatever the disputed amount (Stripe disputes what was not refunded)', () => {
    const refundedInPart: TokenAccountEvent[] = [
      { type: 'PaymentRefunded', data: { userId, paymentId, orderId, providerRefundId: 're_1', tokens: 100, tokensDebited: 40, occurredAt: capturedAt.toISOString() } },
      { type: 'TokensRefunded', data: { userId, transactionId: 'refund-tx', paymentId, amount: 40, description: null, balanceAfter: 0, occurredAt: capturedAt.toISOString(), draws: [{ lotId: purchaseLot, amount: 40 }], heldAfter: 0 } },
    ];
    const [close] = tokenAccountDecider.decide(lostFor(50), state([...paid, used(60, 40), ...refundedInPart, opened]));
    expect(close?.data).toMatchObject({ tokens: 60 });
  });
});

describe('disputes: the shortfall blocks spending until credits cover it', () => {
  const inShortfall = [...paid, used(70, 30), opened, closed('lost', 100, 30, 70), chargedBack(30, 0, [{ lotId: purchaseLot, amount: 30 }])];
  const later = new Date('2026-12-21T09:00:00.000Z');

  it('refuses usage and new holds with ACCOUNT_IN_SHORTFALL and the amount owed', () => {
    spec.given(inShortfall).when({ type: 'UseTokens', data: { userId, amount: 1, description: null, transactionId: 'use-2', now: later } }).thenThrows('ACCOUNT_IN_SHORTFALL', { shortfall: 70 });
    spec
      .given(inShortfall)
      .when({ type: 'HoldTokens', data: { userId, holdId: 'hold-2', amount: 1, description: null, ttlSeconds: 60, ttlSecondsMax: 3600, transactionId: 'hold-tx', now: later } })
      .thenThrows('ACCOUNT_IN_SHORTFALL', { shortfall: 70 });
  });

  it('pays the shortfall off first from a later credit, and spends again once it is covered', () => {
    const grant: TokenAccountCommand = { type: 'GrantTokens', data: { userId, amount: 50, reason: 'Goodwill', priority: 10, expiresAt: null, transactionId: 'grant-2', now: later } };
    const grantedLater: TokensGranted = {
      type: 'TokensGranted',
      data: { userId, transactionId: 'grant-2', amount: 50, reason: 'Goodwill', lot: { lotId: 'grant-2', priority: 10, expiresAt: null }, balanceAfter: 50, heldAfter: 0, occurredAt: later.toISOString() },
    };
    const covered = (amount: number, balanceAfter: number, shortfallAfter: number, lotId: string, transactionId: string): ShortfallCovered => ({
      type: 'ShortfallCovered',
      data: {
        userId,
        transactionId: derivedTransactionId(transactionId, 'shortfall-covered'),
        amount,
        description: SHORTFALL_COVERED_DESCRIPTION,
        balanceAfter,
        heldAfter: 0,
        shortfallAfter,
        draws: [{ lotId, amount }],
        occurredAt: later.toISOString(),
      },
    });
    spec.given(inShortfall).when(grant).then([grantedLater, covered(50, 0, 20, 'grant-2', 'grant-2')]);
    const partlyCovered = [...inShortfall, grantedLater, covered(50, 0, 20, 'grant-2', 'grant-2')];
    const purchase: TokenAccountCommand = { type: 'AddTokens', data: { userId, paymentId: 'direct-1', amount: 100, description: null, transactionId: 'buy-2', now: later } };
    const bought: TokensPurchased = {
      type: 'TokensPurchased',
      data: { userId, transactionId: 'buy-2', paymentId: 'direct-1', amount: 100, description: null, balanceAfter: 100, occurredAt: later.toISOString(), lot: { lotId: 'buy-2', priority: LOT_PRIORITY_DEFAULT, expiresAt: null }, heldAfter: 0 },
    };
    spec.given(partlyCovered).when(purchase).then([bought, covered(20, 80, 0, 'buy-2', 'buy-2')]);
    const settled = state([...partlyCovered, bought, covered(20, 80, 0, 'buy-2', 'buy-2')]);
    expect({ balance: settled.balance, shortfall: settled.shortfall }).toEqual({ balance: 80, shortfall: 0 });
    expect(tokenAccountDecider.decide({ type: 'UseTokens', data: { userId, amount: 80, description: null, transactionId: 'use-3', now: later } }, settled).map((event) => event.type)).toEqual(['TokensUsed']);
  });

  it('pays the shortfall off from the tokens a released hold gives back', () => {
    const held: TokensHeld = {
      type: 'TokensHeld',
      data: { userId, holdId: 'hold-9', amount: 30, description: null, expiresAt: '2026-12-31T00:00:00.000Z', draws: [{ lotId: purchaseLot, amount: 30 }], balanceAfter: 100, heldAfter: 30, occurredAt: capturedAt.toISOString() },
    };
    // 70 free tokens charged back, 30 held: the dispute owed 100, so 30 are owed until the hold ends.
    const history = [...paid, held, opened, closed('lost', 100, 70, 30), chargedBack(70, 30, [{ lotId: purchaseLot, amount: 70 }], 30)];
    const events = tokenAccountDecider.decide({ type: 'ReleaseHold', data: { userId, holdId: 'hold-9', transactionId: 'release-tx', now: later } }, state(history));
    expect(events.map((event) => event.type)).toEqual(['HoldReleased', 'ShortfallCovered']);
    expect(events[1]?.data).toMatchObject({ amount: 30, balanceAfter: 0, shortfallAfter: 0, draws: [{ lotId: purchaseLot, amount: 30 }] });
  });

  it('completes a pending refund with the lost dispute: the refund takes the tokens it reserved, the dispute owes nothing more', () => {
    // The refund was asked for before the dispute was known; the provider refuses to refund a charge the
    // bank took back (Stripe: charge_disputed), so the chargeback is the money going back.
    const requested: TokenAccountEvent = { type: 'PaymentRefundRequested', data: { userId, paymentId, orderId, tokens: 100, occurredAt: capturedAt.toISOString() } };
    const refundedByDispute: TokenAccountEvent[] = [
      { type: 'PaymentRefunded', data: { userId, paymentId, orderId, providerRefundId: disputeId, tokens: 100, tokensDebited: 100, occurredAt: closedAt.toISOString() } },
      {
        type: 'TokensRefunded',
        data: { userId, transactionId: 'dispute-tx', paymentId, amount: 100, description: 'Refund of token package starter', balanceAfter: 0, occurredAt: closedAt.toISOString(), draws: [{ lotId: purchaseLot, amount: 100 }], heldAfter: 0 },
      },
    ];
    spec.given([...paid, requested, opened]).when(dispute('lost')).then([...refundedByDispute, closed('lost', 0, 0, 0)]);
    // Reported lost before it was reported open: the opening first.
    spec.given([...paid, requested]).when(dispute('lost')).then([{ ...opened, data: { ...opened.data, occurredAt: closedAt.toISOString() } }, ...refundedByDispute, closed('lost', 0, 0, 0)]);
    const after = state([...paid, requested, opened, ...refundedByDispute, closed('lost', 0, 0, 0)]);
    expect({ balance: after.balance, reserved: after.reservedForRefunds, shortfall: after.shortfall, payment: after.payments.get(paymentId)?.status }).toEqual({ balance: 0, reserved: 0, shortfall: 0, payment: 'REFUNDED' });
    // A refund the provider reports afterwards (it had made one after all) takes nothing more.
    spec.given([...paid, requested, opened, ...refundedByDispute, closed('lost', 0, 0, 0)]).when({ type: 'RefundPayment', data: { userId, paymentId, providerRefundId: 're_1', transactionId: 'refund-tx', now: closedAt } }).then([]);
    // A won dispute leaves the refund pending: the provider can refund the charge again.
    spec.given([...paid, requested, opened]).when(dispute('won')).then([closed('won', 0, 0, 0)]);
  });

  it('fails loudly on a stream whose close records a shortfall replay does not give', () => {
    expect(() => state([...paid, used(70, 30), opened, closed('lost', 100, 30, 60)])).toThrow('records shortfallAfter 60, replay gives 70');
  });

  it('keeps disputes and the shortfall in the snapshot, and ignores snapshots of version 3 and 4', () => {
    const current = state(inShortfall);
    const decoded = tokenAccountSnapshot.decode(JSON.parse(JSON.stringify(tokenAccountSnapshot.encode(current))));
    expect({ shortfall: decoded.shortfall, disputes: decoded.disputes.toJS() }).toEqual({ shortfall: 70, disputes: current.disputes.toJS() });
    expect(tokenAccountSnapshot.version).toBe(8);
    expect(() => tokenAccountSnapshot.decode({ ...(tokenAccountSnapshot.encode(current) as object), shortfall: -1 })).toThrow('shortfall is not a count');
  });
});

describe('disputes: what is owed, at the limits', () => {
  const later = new Date('2026-12-21T09:00:00.000Z');
  /** A captured provider payment of `tokens`, credited to a lot of its own. */
  const payment = (id: string, tokens: number, balanceAfter: number): TokenAccountEvent[] => [
    { ...initiated, data: { ...initiated.data, paymentId: id, orderId: `pi_${id}`, tokens } },
    { ...captured, data: { ...captured.data, paymentId: id, orderId: `pi_${id}` } },
    { ...purchased, data: { ...purchased.data, paymentId: id, transactionId: `buy-${id}`, amount: tokens, balanceAfter, lot: { lotId: `buy-${id}`, priority: LOT_PRIORITY_DEFAULT, expiresAt: null } } },
  ];
  const spent = (id: string, amount: number, balanceAfter: number): TokensUsed => used(amount, balanceAfter, [{ lotId: `buy-${id}`, amount }]);
  const lost = (id: string, dispute = `dp_${id}`): RecordDispute => ({
    type: 'RecordDispute',
    data: { userId, paymentId: id, disputeId: dispute, status: 'lost', amount: 500, currency: 'USD', reason: 'fraudulent', transactionId: `tx-${dispute}`, now: closedAt },
  });

  it('takes back a payment of BALANCE_MAX tokens whole, and owes all of it when all was spent', () => {
    const [, close, chargeBack] = tokenAccountDecider.decide(lost('big'), state(payment('big', BALANCE_MAX, BALANCE_MAX)));
    expect({ close: close?.data, chargeBack: chargeBack?.data }).toMatchObject({
      close: { tokens: BALANCE_MAX, tokensDebited: BALANCE_MAX, shortfallAfter: 0 },
      chargeBack: { amount: BALANCE_MAX, balanceAfter: 0 },
    });
    const owed = tokenAccountDecider.decide(lost('big'), state([...payment('big', BALANCE_MAX, BALANCE_MAX), spent('big', BALANCE_MAX, 0)]));
    expect(owed.map((event) => event.type)).toEqual(['PaymentDisputeOpened', 'PaymentDisputeClosed']);
    expect(owed[1]?.data).toMatchObject({ tokens: BALANCE_MAX, tokensDebited: 0, shortfallAfter: BALANCE_MAX });
  });

  it('refuses a lost dispute that would owe more than BALANCE_MAX in all (BALANCE_OUT_OF_RANGE), with the amounts', () => {
    // Two payments spent; the first one's loss already owes all but 5 of BALANCE_MAX.
    const history = [
      ...payment('first', BALANCE_MAX - 5, BALANCE_MAX - 5),
      spent('first', BALANCE_MAX - 5, 0),
      ...payment('second', 10, 10),
      spent('second', 10, 0),
    ];
    const afterFirst = [...history, ...tokenAccountDecider.decide(lost('first'), state(history))];
    expect(state(afterFirst).shortfall).toBe(BALANCE_MAX - 5);
    spec
      .given(afterFirst)
      .when(lost('second'))
      .thenThrows('BALANCE_OUT_OF_RANGE', { balance: 0, requested: 10 }, `a shortfall of ${BALANCE_MAX - 5 + 10} tokens would exceed ${BALANCE_MAX}`);
    // Owing exactly BALANCE_MAX is allowed.
    const exact = [...payment('first', BALANCE_MAX - 10, BALANCE_MAX - 10), spent('first', BALANCE_MAX - 10, 0), ...payment('second', 10, 10), spent('second', 10, 0)];
    const afterExactFirst = [...exact, ...tokenAccountDecider.decide(lost('first'), state(exact))];
    const closing = tokenAccountDecider.decide(lost('second'), state(afterExactFirst));
    expect(closing[1]?.data).toMatchObject({ tokens: 10, tokensDebited: 0, shortfallAfter: BALANCE_MAX });
  });

  it('takes back what a refund could not: a payment refunded in part owes the rest', () => {
    // 60 of the 100 were spent when the provider refunded the payment: the refund took back 40.
    const refundedInPart: TokenAccountEvent[] = [
      { type: 'PaymentRefunded', data: { userId, paymentId, orderId, providerRefundId: 're_1', tokens: 100, tokensDebited: 40, occurredAt: capturedAt.toISOString() } },
      { type: 'TokensRefunded', data: { userId, transactionId: 'refund-tx', paymentId, amount: 40, description: null, balanceAfter: 0, occurredAt: capturedAt.toISOString(), draws: [{ lotId: purchaseLot, amount: 40 }], heldAfter: 0 } },
    ];
    spec
      .given([...paid, used(60, 40), ...refundedInPart, granted(100, 100), opened])
      .when(dispute('lost'))
      .then([closed('lost', 60, 60, 0), chargedBack(60, 40, [{ lotId: 'grant-tx', amount: 60 }])]);
  });

  it('pays the shortfall off in draw-down order when a released hold frees several lots', () => {
    // The hold set aside both lots; the grant (priority 10) is spent before the purchase (default priority), though created after it.
    const held: TokensHeld = {
      type: 'TokensHeld',
      data: {
        userId,
        holdId: 'hold-all',
        amount: 150,
        description: null,
        expiresAt: '2026-12-31T00:00:00.000Z',
        draws: [
          { lotId: purchaseLot, amount: 100 },
          { lotId: 'grant-tx', amount: 50 },
        ],
        balanceAfter: 150,
        heldAfter: 150,
        occurredAt: capturedAt.toISOString(),
      },
    };
    const history = [...paid, granted(50, 150), held, opened, closed('lost', 100, 0, 100)];
    const events = tokenAccountDecider.decide({ type: 'ReleaseHold', data: { userId, holdId: 'hold-all', transactionId: 'release-tx', now: later } }, state(history));
    expect(events.map((event) => event.type)).toEqual(['HoldReleased', 'ShortfallCovered']);
    expect(events[1]?.data).toMatchObject({
      amount: 100,
      balanceAfter: 50,
      shortfallAfter: 0,
      draws: [
        { lotId: 'grant-tx', amount: 50 },
        { lotId: purchaseLot, amount: 50 },
      ],
    });
  });

  it('tells the client why a dispute or a spend is refused (the problem detail)', () => {
    spec.given([initiated]).when(dispute('open')).thenThrows('PAYMENT_NOT_CAPTURED', { paymentId }, `payment ${paymentId} is PENDING; only a captured payment can be disputed`);
    spec.given([]).when(dispute('open')).thenThrows('PAYMENT_NOT_FOUND', { paymentId }, `payment ${paymentId} does not exist on this account`);
    const inShortfall = [...paid, used(70, 30), opened, closed('lost', 100, 30, 70), chargedBack(30, 0, [{ lotId: purchaseLot, amount: 30 }])];
    spec
      .given(inShortfall)
      .when({ type: 'UseTokens', data: { userId, amount: 1, description: null, transactionId: 'use-2', now: later } })
      .thenThrows('ACCOUNT_IN_SHORTFALL', { shortfall: 70 }, 'the account owes 70 tokens of lost payment disputes; a purchase or grant covers them first');
  });

  it('fails loudly on a dispute without an id, with an amount that is not money or a currency that is not ISO 4217', () => {
    const reported = (data: Partial<RecordDispute['data']>): RecordDispute => ({ ...dispute('open'), data: { ...dispute('open').data, ...data } });
    for (const bad of [{ disputeId: '' }, { amount: 0 }, { amount: 1.5 }, { currency: 'usd' }]) {
      expect(() => tokenAccountDecider.decide(reported(bad), state(paid))).toThrow(LedgerInvariantViolation);
    }
    expect(tokenAccountDecider.decide(reported({ amount: 1, currency: 'EUR' }), state(paid)).map((event) => event.type)).toEqual(['PaymentDisputeOpened']);
  });

  it('fails loudly on a dispute id reported again for another payment', () => {
    const otherPaymentId = '33333333-3333-4333-8333-333333333333';
    const history = [...paid, ...payment(otherPaymentId, 100, 200), opened];
    const moved: RecordDispute = { ...dispute('lost'), data: { ...dispute('lost').data, paymentId: otherPaymentId } };
    const before = state(history);
    expect(before.payments.get(otherPaymentId)?.status).toBe('COMPLETED');
    expect(() => tokenAccountDecider.decide(moved, before)).toThrow(LedgerInvariantViolation);
  });
});
