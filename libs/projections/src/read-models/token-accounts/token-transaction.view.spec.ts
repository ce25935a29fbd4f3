import type { RecordedEvent } from '@app/event-store';
import { SHORTFALL_COVERED_DESCRIPTION, TOKEN_ACCOUNT_EVENT_TYPES, type TokenAccountEvent } from '@app/ledger';
import { tokenAccountsProjection } from './token-accounts.projection.js';
import { transactionOf } from './token-transaction.view.js';

const userId = '00000000-0000-4000-8000-000000000001';
const paymentId = '00000000-0000-4000-8000-0000000000aa';
const transactionId = '00000000-0000-4000-8000-0000000000bb';
const occurredAt = '2026-11-24T12:00:00.000Z';
const ids = { userId, paymentId, orderId: 'order-1', occurredAt };

const ROW_EVENTS = {
  TokensPurchased: { type: 'TokensPurchased', data: { userId, transactionId, paymentId, amount: 100, description: 'Token package starter', balanceAfter: 150, occurredAt } },
  TokensUsed: { type: 'TokensUsed', data: { userId, transactionId, amount: 30, description: null, balanceAfter: 120, occurredAt } },
  TokensRefunded: { type: 'TokensRefunded', data: { userId, transactionId, paymentId, amount: 100, description: 'Refund of payment', balanceAfter: 20, occurredAt } },
  TokensAdjusted: { type: 'TokensAdjusted', data: { userId, transactionId, amount: -20, reason: 'Chargeback', balanceAfter: 0, occurredAt } },
  TokensGranted: {
    type: 'TokensGranted',
    data: { userId, transactionId, amount: 50, reason: 'Welcome bonus', lot: { lotId: transactionId, priority: 10, expiresAt: null }, balanceAfter: 50, heldAfter: 0, occurredAt },
  },
  GrantVoided: {
    type: 'GrantVoided',
    data: { userId, transactionId, lotId: 'lot-1', amount: 15, reason: 'Mistake', draws: [{ lotId: 'lot-1', amount: 15 }], balanceAfter: 35, heldAfter: 0, occurredAt },
  },
  LotExpired: {
    type: 'LotExpired',
    data: { userId, transactionId, lotId: 'lot-1', amount: 5, expiresAt: occurredAt, draws: [{ lotId: 'lot-1', amount: 5 }], balanceAfter: 30, heldAfter: 2, occurredAt },
  },
  TokensChargedBack: {
    type: 'TokensChargedBack',
    data: { userId, transactionId, paymentId, disputeId: 'dp_1', amount: 25, description: 'Chargeback of token package starter (dispute dp_1)', draws: [{ lotId: 'lot-1', amount: 25 }], balanceAfter: 5, heldAfter: 0, occurredAt },
  },
  ShortfallCovered: {
    type: 'ShortfallCovered',
    data: { userId, transactionId, amount: 40, description: SHORTFALL_COVERED_DESCRIPTION, draws: [{ lotId: 'lot-2', amount: 40 }], balanceAfter: 60, heldAfter: 0, shortfallAfter: 35, occurredAt },
  },
} as const satisfies Record<string, TokenAccountEvent>;

const ROWLESS_EVENTS = {
  PaymentInitiated: {
    type: 'PaymentInitiated',
    data: { ...ids, packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'mock', expiresAt: '2026-11-24T12:15:00.000Z' },
  },
  PaymentCaptured: { type: 'PaymentCaptured', data: { ...ids, providerTransactionId: 'txn-1' } },
  PaymentFailed: { type: 'PaymentFailed', data: { ...ids, reason: 'Card declined' } },
  PaymentExpired: { type: 'PaymentExpired', data: { ...ids, reason: 'expired' } },
  PaymentRefundRequested: { type: 'PaymentRefundRequested', data: { ...ids, tokens: 100 } },
  PaymentRefundFailed: { type: 'PaymentRefundFailed', data: { ...ids, tokens: 100, providerRefundId: 're_1', reason: 'failed: expired_or_canceled_card' } },
  PaymentRefunded: { type: 'PaymentRefunded', data: { ...ids, providerRefundId: 'refund-1', tokens: 100, tokensDebited: 100 } },
  TokensHeld: {
    type: 'TokensHeld',
    data: { userId, holdId: 'hold-1', amount: 5, description: null, expiresAt: occurredAt, draws: [{ lotId: 'lot-1', amount: 5 }], balanceAfter: 50, heldAfter: 5, occurredAt },
  },
  HoldSettled: {
    type: 'HoldSettled',
    data: { userId, holdId: 'hold-1', amount: 5, settledAmount: 3, releasedAmount: 2, transactionId, balanceAfter: 50, heldAfter: 0, occurredAt },
  },
  HoldReleased: { type: 'HoldReleased', data: { userId, holdId: 'hold-1', amount: 5, balanceAfter: 50, heldAfter: 0, occurredAt } },
  HoldExpired: { type: 'HoldExpired', data: { userId, holdId: 'hold-1', amount: 5, expiresAt: occurredAt, balanceAfter: 50, heldAfter: 0, occurredAt } },
  PaymentDisputeOpened: { type: 'PaymentDisputeOpened', data: { ...ids, disputeId: 'dp_1', amount: 500, currency: 'USD', reason: 'fraudulent' } },
  PaymentDisputeClosed: { type: 'PaymentDisputeClosed', data: { ...ids, disputeId: 'dp_1', outcome: 'lost', tokens: 100, tokensDebited: 25, shortfallAfter: 75 } },
} as const satisfies Record<string, TokenAccountEvent>;

const row = { id: transactionId, userId, createdAt: occurredAt, holdId: null, lotId: null, draws: null, metadata: null };

const recordedOf = (event: TokenAccountEvent): RecordedEvent => ({
  id: '00000000-0000-4000-8000-0000000000ee',
  streamId: `token-account-${userId}`,
  revision: 7n,
  position: { commit: 900n, prepare: 42n },
  type: event.type,
  data: event.data,
  metadata: {},
  createdAt: new Date(occurredAt),
});

describe('transactionOf', () => {
  it('covers every token account event type', () => {
    expect([...Object.keys(ROW_EVENTS), ...Object.keys(ROWLESS_EVENTS)].sort()).toEqual([...TOKEN_ACCOUNT_EVENT_TYPES].sort());
  });

  it('makes a purchase a positive row of its payment', () => {
    expect(transactionOf(ROW_EVENTS.TokensPurchased)).toEqual({ ...row, amount: 100, transactionType: 'purchase', description: 'Token package starter', paymentId, balanceAfter: 150 });
  });

  it('makes a usage a negative row of no payment', () => {
    expect(transactionOf(ROW_EVENTS.TokensUsed)).toEqual({ ...row, amount: -30, transactionType: 'usage', description: null, paymentId: null, balanceAfter: 120 });
  });

  it('makes a refund a negative row of its payment', () => {
    expect(transactionOf(ROW_EVENTS.TokensRefunded)).toEqual({ ...row, amount: -100, transactionType: 'refund', description: 'Refund of payment', paymentId, balanceAfter: 20 });
  });

  it('keeps the sign of an adjustment and shows its reason as the description', () => {
    expect(transactionOf(ROW_EVENTS.TokensAdjusted)).toEqual({ ...row, amount: -20, transactionType: 'adjustment', description: 'Chargeback', paymentId: null, balanceAfter: 0 });
    const credit = { type: 'TokensAdjusted', data: { ...ROW_EVENTS.TokensAdjusted.data, amount: 5, balanceAfter: 25 } } as const;
    expect(transactionOf(credit)).toMatchObject({ amount: 5, transactionType: 'adjustment', balanceAfter: 25 });
  });

  it('makes a grant a positive adjustment row of its lot, and its void a negative one with its draws', () => {
    expect(transactionOf(ROW_EVENTS.TokensGranted)).toEqual({ ...row, amount: 50, transactionType: 'adjustment', description: 'Welcome bonus', paymentId: null, balanceAfter: 50, lotId: transactionId });
    expect(transactionOf(ROW_EVENTS.GrantVoided)).toEqual({
      ...row,
      amount: -15,
      transactionType: 'adjustment',
      description: 'Mistake',
      paymentId: null,
      balanceAfter: 35,
      draws: [{ lotId: 'lot-1', amount: 15 }],
    });
  });

  it('makes a lot expiry a negative expiry row naming the lot', () => {
    expect(transactionOf(ROW_EVENTS.LotExpired)).toEqual({
      ...row,
      amount: -5,
      transactionType: 'expiry',
      description: 'Credit lot lot-1 expired',
      paymentId: null,
      balanceAfter: 30,
      draws: [{ lotId: 'lot-1', amount: 5 }],
    });
  });

  it('makes a chargeback a negative chargeback row of its payment, and a shortfall cover one of no payment', () => {
    expect(transactionOf(ROW_EVENTS.TokensChargedBack)).toEqual({
      ...row,
      amount: -25,
      transactionType: 'chargeback',
      description: 'Chargeback of token package starter (dispute dp_1)',
      paymentId,
      balanceAfter: 5,
      draws: [{ lotId: 'lot-1', amount: 25 }],
    });
    expect(transactionOf(ROW_EVENTS.ShortfallCovered)).toMatchObject({ amount: -40, transactionType: 'chargeback', description: SHORTFALL_COVERED_DESCRIPTION, paymentId: null, balanceAfter: 60 });
  });

  it('links a usage that settled a hold to the hold and its draws', () => {
    const settled = { type: 'TokensUsed', data: { ...ROW_EVENTS.TokensUsed.data, holdId: 'hold-1', draws: [{ lotId: 'lot-1', amount: 30 }], heldAfter: 0 } } as const;
    expect(transactionOf(settled)).toMatchObject({ transactionType: 'usage', holdId: 'hold-1', draws: [{ lotId: 'lot-1', amount: 30 }] });
  });

  it("shows a usage's metadata, and writes it as the row's jsonb", () => {
    const metadata = { model: 'gpt-4o', requestId: 'req-1', tokens: 812, cached: false };
    const used = { type: 'TokensUsed', data: { ...ROW_EVENTS.TokensUsed.data, metadata } } as const;
    expect(transactionOf(used)).toEqual({ ...row, amount: -30, transactionType: 'usage', description: null, paymentId: null, balanceAfter: 120, metadata });
    expect(tokenAccountsProjection.project(recordedOf(used))[1]?.values.at(-1)).toBe(JSON.stringify(metadata));
  });

  it.each(Object.values(ROWLESS_EVENTS))('makes no row of $type', (event) => {
    expect(transactionOf(event)).toBeNull();
  });
});


describe('tokenAccountsProjection.project', () => {
  const recorded = recordedOf;

  it.each(Object.values(ROW_EVENTS))('writes the row transactionOf gives for $type, with the event id and revision', (event) => {
    const transaction = transactionOf(event);
    const changes = tokenAccountsProjection.project(recorded(event));
    const heldAfter = 'heldAfter' in event.data ? event.data.heldAfter : 0;
    const draws = transaction.draws === null ? null : JSON.stringify(transaction.draws);
    expect(changes.slice(0, 2).map((change) => change.values)).toEqual([
      [userId, transaction.balanceAfter, occurredAt, '7', '900/42', heldAfter, 1],
      [
        transaction.id,
        userId,
        transaction.amount,
        transaction.transactionType,
        transaction.description,
        transaction.paymentId,
        transaction.balanceAfter,
        occurredAt,
        '00000000-0000-4000-8000-0000000000ee',
        '7',
        transaction.holdId,
        transaction.lotId,
        draws,
        null,
      ],
    ]);
  });

  it('credits the opening lot for a credit written before lots, and debits it for such a debit', () => {
    const credit = tokenAccountsProjection.project(recorded(ROW_EVENTS.TokensPurchased))[2];
    expect(credit?.values).toEqual([userId, 'opening', 'opening', null, null, 100, 100, null, occurredAt, '7']);
    const debit = tokenAccountsProjection.project(recorded(ROW_EVENTS.TokensUsed))[2];
    expect(debit?.values).toEqual([userId, 'opening', 30, null, occurredAt]);
  });

  it('marks the payment of a dispute event, and sets the shortfall a close or a cover leaves', () => {
    expect(tokenAccountsProjection.project(recorded(ROWLESS_EVENTS.PaymentDisputeOpened)).map((change) => change.values)).toEqual([[paymentId, 'dp_1', 'open']]);
    expect(tokenAccountsProjection.project(recorded(ROWLESS_EVENTS.PaymentDisputeClosed)).map((change) => change.values)).toEqual([
      [paymentId, 'dp_1', 'lost'],
      [userId, 75],
    ]);
    expect(tokenAccountsProjection.project(recorded(ROW_EVENTS.ShortfallCovered)).at(-1)?.values).toEqual([userId, 35]);
  });

  it('closes the lot an expiry draws from, and updates only the balance and the hold row for a hold event', () => {
    expect(tokenAccountsProjection.project(recorded(ROW_EVENTS.LotExpired))[2]?.values).toEqual([userId, 'lot-1', 5, 'expired', occurredAt]);
    const held = tokenAccountsProjection.project(recorded(ROWLESS_EVENTS.TokensHeld));
    expect(held.map((change) => change.values[0])).toEqual([userId, 'hold-1']);
    expect(held[0]?.values).toEqual([userId, 50, occurredAt, '7', '900/42', 5, 0]);
  });
});
