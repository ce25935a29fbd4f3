import { fold } from '../decider.js';
import { BALANCE_MAX } from '../ledger.limits.js';
import { SnapshotRejected } from '../snapshot.js';
import { tokenAccountDecider } from './token-account.decider.js';
import type { TokenAccountEvent, TokensAdjusted, TokensPurchased, TokensUsed } from './token-account.events.js';
import { tokenAccountSnapshot } from './token-account.snapshot.js';

const userId = '11111111-1111-4111-8111-111111111111';
const at = '2026-11-24T11:00:00.000Z';
const bought: TokensPurchased = { type: 'TokensPurchased', data: { userId, transactionId: 't1', paymentId: 'p1', amount: 10, description: 'Pack', balanceAfter: 10, occurredAt: at } };
const used: TokensUsed = { type: 'TokensUsed', data: { userId, transactionId: 't2', amount: 4, description: null, balanceAfter: 6, occurredAt: at } };
const events: readonly TokenAccountEvent[] = [bought, used];
const state = fold(tokenAccountDecider, tokenAccountDecider.initialState, events);

/** Encodes, then sends through JSON text as the snapshot store does. */
function stored(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value)) as unknown;
}

describe('token account: snapshot', () => {
  it('decodes what it encodes to the same balance and purchases', () => {
    const decoded = tokenAccountSnapshot.decode(stored(tokenAccountSnapshot.encode(state)));
    expect(decoded.balance).toBe(6);
    expect(decoded.purchases.toJS()).toEqual(state.purchases.toJS());
  });

  it('lets a decoded state decide exactly as the replayed one', () => {
    const decoded = tokenAccountSnapshot.decode(stored(tokenAccountSnapshot.encode(state)));
    const repeat = { type: 'AddTokens', data: { userId, paymentId: 'p1', amount: 10, description: 'Pack', transactionId: 't9', now: new Date(at) } } as const;
    expect(tokenAccountDecider.decide(repeat, decoded)).toEqual([]);
    expect(() => tokenAccountDecider.decide({ ...repeat, data: { ...repeat.data, amount: 11 } }, decoded)).toThrow(expect.objectContaining({ code: 'PAYMENT_ID_REUSED' }));
    expect(() => tokenAccountDecider.decide({ type: 'UseTokens', data: { userId, amount: 7, description: null, transactionId: 't9', now: new Date(at) } }, decoded)).toThrow(
      expect.objectContaining({ code: 'INSUFFICIENT_BALANCE' }),
    );
  });

  it('agrees only with the event whose balanceAfter it holds', () => {
    expect(tokenAccountSnapshot.agreesWith(state, used)).toBe(true);
    expect(tokenAccountSnapshot.agreesWith(state, bought)).toBe(false);
  });

  it('keeps an adjusted balance and agrees with the adjustment it follows', () => {
    const adjusted: TokensAdjusted = { type: 'TokensAdjusted', data: { userId, transactionId: 't3', amount: -6, reason: 'Chargeback', balanceAfter: 0, occurredAt: at } };
    const after = fold(tokenAccountDecider, state, [adjusted]);
    const decoded = tokenAccountSnapshot.decode(stored(tokenAccountSnapshot.encode(after)));
    expect(decoded.balance).toBe(0);
    expect(tokenAccountSnapshot.agreesWith(decoded, adjusted)).toBe(true);
    expect(tokenAccountSnapshot.agreesWith(state, adjusted)).toBe(false);
  });

  const encoded = tokenAccountSnapshot.encode(state) as { balance: number; purchases: Record<string, unknown>[] };
  const purchase = encoded.purchases[0] as Record<string, unknown>;
  it.each<[string, unknown]>([
    ['not an object', [1, 2]],
    ['null', null],
    ['a negative balance', { ...encoded, balance: -1 }],
    ['a fractional balance', { ...encoded, balance: 1.5 }],
    ['a balance as text', { ...encoded, balance: '6' }],
    ['purchases that are not a list', { ...encoded, purchases: {} }],
    ['a purchase with a zero amount', { ...encoded, purchases: [{ ...purchase, amount: 0 }] }],
    ['a purchase without a payment id', { ...encoded, purchases: [{ ...purchase, paymentId: undefined }] }],
    ['a purchase with a bad time', { ...encoded, purchases: [{ ...purchase, occurredAt: 'yesterday' }] }],
    ['the same payment twice', { ...encoded, purchases: [purchase, purchase] }],
  ])('rejects a snapshot with %s', (_name, value) => {
    expect(() => tokenAccountSnapshot.decode(value)).toThrow(SnapshotRejected);
  });
});

describe('token account: snapshot of payments', () => {
  const paymentId = 'pay-1';
  const orderId = 'ORDER-1';
  const initiatedAt = '2026-11-24T11:00:00.000Z';
  const movedAt = '2026-11-24T11:10:00.000Z';
  const initiated: TokenAccountEvent = {
    type: 'PaymentInitiated',
    data: { userId, paymentId, orderId, packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'mock', occurredAt: initiatedAt, expiresAt: '2026-11-24T12:00:00.000Z' },
  };
  const captured: TokenAccountEvent = { type: 'PaymentCaptured', data: { userId, paymentId, orderId, providerTransactionId: 'CAPTURE-1', occurredAt: movedAt } };
  const credited: TokensPurchased = {
    type: 'TokensPurchased',
    data: { userId, transactionId: 'tc', paymentId, amount: 100, description: 'Token package starter', balanceAfter: 100, occurredAt: movedAt },
  };
  const declined: TokenAccountEvent = { type: 'PaymentFailed', data: { userId, paymentId, orderId, reason: 'card_declined', occurredAt: movedAt } };
  const expired: TokenAccountEvent = { type: 'PaymentExpired', data: { userId, paymentId, orderId, reason: 'Payment timed out', occurredAt: movedAt } };
  const refunded: TokenAccountEvent = { type: 'PaymentRefunded', data: { userId, paymentId, orderId, providerRefundId: 'REFUND-1', tokens: 100, tokensDebited: 100, occurredAt: movedAt } };
  const tokensRefunded: TokenAccountEvent = {
    type: 'TokensRefunded',
    data: { userId, transactionId: 'tr', paymentId, amount: 100, description: 'Refund of token package starter', balanceAfter: 0, occurredAt: movedAt },
  };
  const replay = (history: readonly TokenAccountEvent[]) => fold(tokenAccountDecider, tokenAccountDecider.initialState, history);

  it.each<[string, readonly TokenAccountEvent[]]>([
    ['initiated', [initiated]],
    ['captured', [initiated, captured]],
    ['declined', [initiated, declined]],
    ['expired', [initiated, expired]],
    ['refunded', [initiated, captured, credited, refunded]],
  ])('agrees with the payment event it follows when the payment is %s', (_name, history) => {
    expect(tokenAccountSnapshot.agreesWith(replay(history), history.at(-1) as TokenAccountEvent)).toBe(true);
  });

  it('agrees with a refund of tokens by the balance it records', () => {
    const history = [initiated, captured, credited, refunded, tokensRefunded];
    expect(tokenAccountSnapshot.agreesWith(replay(history), tokensRefunded)).toBe(true);
    expect(tokenAccountSnapshot.agreesWith(replay(history.slice(0, -1)), tokensRefunded)).toBe(false);
  });

  it('disagrees with a payment event of another time, another status or an unknown payment', () => {
    // The same time, another status: a capture recorded at the instant of the initiation.
    const capturedAtOnce: TokenAccountEvent = { ...captured, data: { ...captured.data, occurredAt: initiatedAt } };
    expect(tokenAccountSnapshot.agreesWith(replay([initiated]), capturedAtOnce)).toBe(false);
    // The same status, another time: a second initiation of the payment, later.
    expect(tokenAccountSnapshot.agreesWith(replay([initiated]), { ...initiated, data: { ...initiated.data, occurredAt: movedAt } })).toBe(false);
    expect(tokenAccountSnapshot.agreesWith(replay([initiated, declined]), expired)).toBe(true);
    expect(tokenAccountSnapshot.agreesWith(replay([initiated, captured]), refunded)).toBe(false);
    expect(tokenAccountSnapshot.agreesWith(replay([]), initiated)).toBe(false);
  });

  const full = replay([initiated, captured, credited, refunded, tokensRefunded, { ...initiated, data: { ...initiated.data, paymentId: 'pay-2' } }, { ...declined, data: { ...declined.data, paymentId: 'pay-2' } }]);
  const encoded = stored(tokenAccountSnapshot.encode(full)) as { balance: number; purchases: Record<string, unknown>[]; payments: Record<string, unknown>[] };
  const payment = encoded.payments[0] as Record<string, unknown>;
  const purchase = encoded.purchases[0] as Record<string, unknown>;
  const withPayment = (change: Record<string, unknown>) => ({ ...encoded, payments: [{ ...payment, ...change }] });
  const withPurchase = (change: Record<string, unknown>) => ({ ...encoded, purchases: [{ ...purchase, ...change }] });

  it('decodes every payment field as it was, so a decision from a snapshot is the decision from the replay', () => {
    const decoded = tokenAccountSnapshot.decode(encoded);
    expect(decoded.payments.toJS()).toEqual(full.payments.toJS());
    expect(decoded.purchases.toJS()).toEqual(full.purchases.toJS());
    expect(decoded.balance).toBe(full.balance);
  });

  it.each<[string, Record<string, unknown>]>([
    ['a failure of either kind', { failure: 'expired', failureReason: 'Payment timed out' }],
    ['no references yet', { providerTransactionId: null, providerRefundId: null, failureReason: null, tokensDebited: null }],
    ['a refund that debited nothing', { tokensDebited: 0 }],
    ['the smallest price', { amount: 1 }],
  ])('accepts a payment with %s', (_name, change) => {
    expect(tokenAccountSnapshot.decode(withPayment(change)).payments.get(paymentId)).toMatchObject(change);
  });

  it.each<[string, unknown]>([
    ['a balance above the maximum', { ...encoded, balance: BALANCE_MAX + 1 }],
    ['payments that are not a list', { ...encoded, payments: {} }],
    ['no purchases', { balance: encoded.balance, payments: encoded.payments }],
    ['a payment that is not an object', { ...encoded, payments: ['pay-1'] }],
    ['the same payment twice', { ...encoded, payments: [payment, payment] }],
    ['a payment whose user is not text', withPayment({ userId: 7 })],
    ['a payment without an id', withPayment({ paymentId: undefined })],
    ['a payment whose order is not text', withPayment({ orderId: null })],
    ['a payment whose package is not text', withPayment({ packageId: 1 })],
    ['a payment whose provider is not text', withPayment({ provider: false })],
    ['a payment of no tokens', withPayment({ tokens: 0 })],
    ['a payment of tokens as text', withPayment({ tokens: '100' })],
    ['a payment of fractional tokens', withPayment({ tokens: 1.5 })],
    ['a payment with a price of 0', withPayment({ amount: 0 })],
    ['a payment with a price as text', withPayment({ amount: '500' })],
    ['a payment in a currency of four letters', withPayment({ currency: 'USDX' })],
    ['a payment in a currency in lower case', withPayment({ currency: 'usd' })],
    ['a payment in a currency that is not text', withPayment({ currency: 840 })],
    ['a payment with a bad start time', withPayment({ occurredAt: 'yesterday' })],
    ['a payment with a bad expiry', withPayment({ expiresAt: null })],
    ['a payment with a bad update time', withPayment({ updatedAt: 12 })],
    ['a payment with an unknown status', withPayment({ status: 'SETTLED' })],
    ['a payment with an unknown failure', withPayment({ failure: 'timeout' })],
    ['a payment whose failure reason is not text', withPayment({ failureReason: 3 })],
    ['a payment whose capture reference is not text', withPayment({ providerTransactionId: 3 })],
    ['a payment whose refund reference is not text', withPayment({ providerRefundId: {} })],
    ['a payment that debited a negative number of tokens', withPayment({ tokensDebited: -1 })],
    ['a payment that debited a fractional number of tokens', withPayment({ tokensDebited: 0.5 })],
    ['a payment that debited tokens given as text', withPayment({ tokensDebited: '100' })],
    ['a purchase whose user is not text', withPurchase({ userId: 1 })],
    ['a purchase whose transaction is not text', withPurchase({ transactionId: null })],
    ['a purchase of tokens as text', withPurchase({ amount: '100' })],
    ['a purchase whose description is too long', withPurchase({ description: 'x'.repeat(501) })],
    ['a purchase whose description is not text', withPurchase({ description: 5 })],
    ['a purchase whose balanceAfter is below its amount', withPurchase({ balanceAfter: 99 })],
    ['a purchase whose balanceAfter is fractional', withPurchase({ balanceAfter: 100.5 })],
    ['a purchase whose balanceAfter is text', withPurchase({ balanceAfter: '100' })],
  ])('rejects a snapshot with %s', (_name, value) => {
    expect(() => tokenAccountSnapshot.decode(value)).toThrow(SnapshotRejected);
  });

  it('accepts a purchase whose description is exactly as long as allowed, or missing', () => {
    expect(tokenAccountSnapshot.decode(withPurchase({ description: 'x'.repeat(500) })).purchases.get(paymentId)?.description).toHaveLength(500);
    expect(tokenAccountSnapshot.decode(withPurchase({ description: null })).purchases.get(paymentId)?.description).toBeNull();
    expect(tokenAccountSnapshot.decode(withPurchase({ balanceAfter: 100 })).purchases.get(paymentId)?.balanceAfter).toBe(100);
  });
});
