import { fold } from '../decider.js';
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
