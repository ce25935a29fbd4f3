import type { RecordedEvent } from '@app/event-store';
import { TOKEN_ACCOUNT_EVENT_TYPES, type TokenAccountEvent } from '@app/ledger';
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
  PaymentRefunded: { type: 'PaymentRefunded', data: { ...ids, providerRefundId: 'refund-1', tokens: 100, tokensDebited: 100 } },
} as const satisfies Record<string, TokenAccountEvent>;

const row = { id: transactionId, userId, createdAt: occurredAt };

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

  it.each(Object.values(ROWLESS_EVENTS))('makes no row of $type', (event) => {
    expect(transactionOf(event)).toBeNull();
  });
});

describe('tokenAccountsProjection.project', () => {
  const recorded = (event: TokenAccountEvent): RecordedEvent => ({
    id: '00000000-0000-4000-8000-0000000000ee',
    streamId: `token-account-${userId}`,
    revision: 7n,
    position: { commit: 900n, prepare: 42n },
    type: event.type,
    data: event.data,
    metadata: {},
    createdAt: new Date(occurredAt),
  });

  it.each(Object.values(ROW_EVENTS))('writes the row transactionOf gives for $type, with the event id and revision', (event) => {
    const transaction = transactionOf(event);
    const changes = tokenAccountsProjection.project(recorded(event));
    expect(changes.map((change) => change.values)).toEqual([
      [userId, transaction.balanceAfter, occurredAt, '7', '900/42'],
      [transaction.id, userId, transaction.amount, transaction.transactionType, transaction.description, transaction.paymentId, transaction.balanceAfter, occurredAt, '00000000-0000-4000-8000-0000000000ee', '7'],
    ]);
  });
});
