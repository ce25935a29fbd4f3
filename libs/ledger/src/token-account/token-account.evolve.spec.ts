import { fold } from '../decider.js';
import { LedgerInvariantViolation } from '../ledger.errors.js';
import { tokenAccountDecider } from './token-account.decider.js';
import type { TokenAccountEvent } from './token-account.events.js';

const userId = '11111111-1111-4111-8111-111111111111';
const at = '2026-11-24T11:00:00.000Z';

function replay(events: readonly TokenAccountEvent[]) {
  return fold(tokenAccountDecider, tokenAccountDecider.initialState, events);
}

describe('token account: evolve', () => {
  it('folds purchases and usage into the balance and remembers each credited payment', () => {
    const state = replay([
      { type: 'TokensPurchased', data: { userId, transactionId: 't1', paymentId: 'p1', amount: 10, description: null, balanceAfter: 10, occurredAt: at } },
      { type: 'TokensUsed', data: { userId, transactionId: 't2', amount: 4, description: null, balanceAfter: 6, occurredAt: at } },
      { type: 'TokensPurchased', data: { userId, transactionId: 't3', paymentId: 'p2', amount: 5, description: 'x', balanceAfter: 11, occurredAt: at } },
    ]);
    expect(state.balance).toBe(11);
    expect([...state.purchases.keys()]).toEqual(['p1', 'p2']);
    expect(state.purchases.get('p2')?.transactionId).toBe('t3');
  });

  it('never changes an earlier state', () => {
    const first = replay([{ type: 'TokensPurchased', data: { userId, transactionId: 't1', paymentId: 'p1', amount: 10, description: null, balanceAfter: 10, occurredAt: at } }]);
    tokenAccountDecider.evolve(first, { type: 'TokensPurchased', data: { userId, transactionId: 't2', paymentId: 'p2', amount: 1, description: null, balanceAfter: 11, occurredAt: at } });
    expect(first.balance).toBe(10);
    expect(first.purchases.has('p2')).toBe(false);
  });

  it('fails loudly on a usage that would drive the balance below zero', () => {
    expect(() => replay([{ type: 'TokensUsed', data: { userId, transactionId: 't', amount: 1, description: null, balanceAfter: -1, occurredAt: at } }])).toThrow(
      LedgerInvariantViolation,
    );
  });

  it('fails loudly when a recorded balanceAfter disagrees with the replay', () => {
    expect(() =>
      replay([{ type: 'TokensPurchased', data: { userId, transactionId: 't', paymentId: 'p', amount: 5, description: null, balanceAfter: 6, occurredAt: at } }]),
    ).toThrow(LedgerInvariantViolation);
  });

  it('fails loudly on a payment credited twice in the stream', () => {
    const credit = { type: 'TokensPurchased', data: { userId, transactionId: 't', paymentId: 'p', amount: 5, description: null, balanceAfter: 5, occurredAt: at } } as const;
    expect(() => replay([credit, { ...credit, data: { ...credit.data, balanceAfter: 10 } }])).toThrow(LedgerInvariantViolation);
  });

  it('folds adjustments either way into the balance', () => {
    const state = replay([
      { type: 'TokensPurchased', data: { userId, transactionId: 't1', paymentId: 'p1', amount: 10, description: null, balanceAfter: 10, occurredAt: at } },
      { type: 'TokensAdjusted', data: { userId, transactionId: 't2', amount: -10, reason: 'Chargeback', balanceAfter: 0, occurredAt: at } },
      { type: 'TokensAdjusted', data: { userId, transactionId: 't3', amount: 7, reason: 'Goodwill', balanceAfter: 7, occurredAt: at } },
    ]);
    expect(state.balance).toBe(7);
    expect([...state.purchases.keys()]).toEqual(['p1']);
  });

  it.each([
    ['drives the balance below zero', { amount: -1, balanceAfter: -1 }],
    ['moves no tokens', { amount: 0, balanceAfter: 0 }],
    ['records a balanceAfter the replay disagrees with', { amount: 5, balanceAfter: 6 }],
  ])('fails loudly on an adjustment that %s', (_name, { amount, balanceAfter }) => {
    expect(() => replay([{ type: 'TokensAdjusted', data: { userId, transactionId: 't', amount, reason: 'x', balanceAfter, occurredAt: at } }])).toThrow(LedgerInvariantViolation);
  });

  it('fails loudly on an unknown event type', () => {
    expect(() => replay([{ type: 'TokensGifted', data: {} } as unknown as TokenAccountEvent])).toThrow(LedgerInvariantViolation);
  });
});
