import { fold } from '../decider.js';
import { LedgerInvariantViolation } from '../ledger.errors.js';
import { BALANCE_MAX } from '../ledger.limits.js';
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

describe('token account: evolve re-checks every recorded balance', () => {
  const credit = (amount: number, balanceAfter: number, paymentId = 'p1') =>
    ({ type: 'TokensPurchased', data: { userId, transactionId: `t-${paymentId}`, paymentId, amount, description: null, balanceAfter, occurredAt: at } }) as const;
  const use = (amount: number, balanceAfter: number) => ({ type: 'TokensUsed', data: { userId, transactionId: 'tu', amount, description: null, balanceAfter, occurredAt: at } }) as const;

  it('replays a usage, an adjustment and a purchase that take the balance exactly to zero or to the maximum', () => {
    expect(replay([credit(10, 10), use(10, 0)]).balance).toBe(0);
    expect(replay([credit(10, 10), { type: 'TokensAdjusted', data: { userId, transactionId: 'ta', amount: -10, reason: 'x', balanceAfter: 0, occurredAt: at } }]).balance).toBe(0);
    expect(replay([credit(BALANCE_MAX, BALANCE_MAX)]).balance).toBe(BALANCE_MAX);
    expect(replay([{ type: 'TokensAdjusted', data: { userId, transactionId: 'ta', amount: BALANCE_MAX, reason: 'x', balanceAfter: BALANCE_MAX, occurredAt: at } }]).balance).toBe(BALANCE_MAX);
  });

  it.each<[string, readonly TokenAccountEvent[]]>([
    ['a usage whose balanceAfter disagrees with the replay', [credit(10, 10), use(4, 7)]],
    ['a purchase past the maximum balance', [credit(BALANCE_MAX, BALANCE_MAX), credit(1, BALANCE_MAX + 1, 'p2')]],
    ['an adjustment past the maximum balance', [credit(BALANCE_MAX, BALANCE_MAX), { type: 'TokensAdjusted', data: { userId, transactionId: 'ta', amount: 1, reason: 'x', balanceAfter: BALANCE_MAX + 1, occurredAt: at } }]],
  ])('fails loudly on %s', (_name, events) => {
    expect(() => replay(events)).toThrow(LedgerInvariantViolation);
  });
});

describe('token account: evolve re-checks every payment status move', () => {
  const paymentId = 'pay-1';
  const orderId = 'ORDER-1';
  const initiated: TokenAccountEvent = {
    type: 'PaymentInitiated',
    data: { userId, paymentId, orderId, packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'mock', occurredAt: at, expiresAt: '2026-11-24T12:00:00.000Z' },
  };
  const captured: TokenAccountEvent = { type: 'PaymentCaptured', data: { userId, paymentId, orderId, providerTransactionId: 'CAPTURE-1', occurredAt: '2026-11-24T11:10:00.000Z' } };
  const credited: TokenAccountEvent = {
    type: 'TokensPurchased',
    data: { userId, transactionId: 'tc', paymentId, amount: 100, description: 'Token package starter', balanceAfter: 100, occurredAt: '2026-11-24T11:10:00.000Z' },
  };
  const declined: TokenAccountEvent = { type: 'PaymentFailed', data: { userId, paymentId, orderId, reason: 'card_declined', occurredAt: '2026-11-24T11:05:00.000Z' } };
  const expired: TokenAccountEvent = { type: 'PaymentExpired', data: { userId, paymentId, orderId, reason: 'Payment timed out', occurredAt: '2026-11-24T12:00:00.000Z' } };
  const refunded = (tokensDebited: number): TokenAccountEvent => ({
    type: 'PaymentRefunded',
    data: { userId, paymentId, orderId, providerRefundId: 'REFUND-1', tokens: 100, tokensDebited, occurredAt: '2026-11-24T11:20:00.000Z' },
  });
  const tokensRefunded = (amount: number, balanceAfter: number): TokenAccountEvent => ({
    type: 'TokensRefunded',
    data: { userId, transactionId: 'tr', paymentId, amount, description: 'Refund of token package starter', balanceAfter, occurredAt: '2026-11-24T11:20:00.000Z' },
  });
  const use = (amount: number, balanceAfter: number): TokenAccountEvent => ({ type: 'TokensUsed', data: { userId, transactionId: 'tu', amount, description: null, balanceAfter, occurredAt: at } });
  const paymentAfter = (events: readonly TokenAccountEvent[]) => replay(events).payments.get(paymentId);
  const pending = {
    ...initiated.data,
    status: 'PENDING',
    failure: null,
    failureReason: null,
    providerTransactionId: null,
    providerRefundId: null,
    tokensDebited: null,
    updatedAt: at,
  };

  it('keeps each payment with where its lifecycle stands, as the read model and the next decision need it', () => {
    expect(paymentAfter([initiated])).toEqual(pending);
    expect(paymentAfter([initiated, captured, credited])).toEqual({ ...pending, status: 'COMPLETED', providerTransactionId: 'CAPTURE-1', updatedAt: '2026-11-24T11:10:00.000Z' });
    expect(paymentAfter([initiated, declined])).toEqual({ ...pending, status: 'FAILED', failure: 'declined', failureReason: 'card_declined', updatedAt: '2026-11-24T11:05:00.000Z' });
    expect(paymentAfter([initiated, expired])).toEqual({ ...pending, status: 'FAILED', failure: 'expired', failureReason: 'Payment timed out', updatedAt: '2026-11-24T12:00:00.000Z' });
    expect(paymentAfter([initiated, captured, credited, refunded(100), tokensRefunded(100, 0)])).toEqual({
      ...pending,
      status: 'REFUNDED',
      providerTransactionId: 'CAPTURE-1',
      providerRefundId: 'REFUND-1',
      tokensDebited: 100,
      updatedAt: '2026-11-24T11:20:00.000Z',
    });
  });

  it('replays a capture that raced an expiry or a decline: the provider took the money', () => {
    expect(paymentAfter([initiated, expired, captured, credited])?.status).toBe('COMPLETED');
    expect(paymentAfter([initiated, declined, captured, credited])?.status).toBe('COMPLETED');
  });

  it('replays a refund that took back everything, only part, or nothing', () => {
    expect(replay([initiated, captured, credited, refunded(100), tokensRefunded(100, 0)]).balance).toBe(0);
    expect(replay([initiated, captured, credited, use(70, 30), refunded(30), tokensRefunded(30, 0)]).balance).toBe(0);
    expect(replay([initiated, captured, credited, use(100, 0), refunded(0)]).balance).toBe(0);
  });

  it.each<[string, readonly TokenAccountEvent[]]>([
    ['a payment initiated twice', [initiated, initiated]],
    ['an event for a payment never initiated', [captured]],
    ['a capture of a payment already captured', [initiated, captured, credited, captured]],
    ['a capture of a refunded payment', [initiated, captured, credited, refunded(100), tokensRefunded(100, 0), captured]],
    ['a decline of a captured payment', [initiated, captured, credited, declined]],
    ['an expiry of a payment already failed', [initiated, declined, expired]],
    ['a refund of a payment never captured', [initiated, refunded(0)]],
    ['a refund of a payment already refunded', [initiated, captured, credited, refunded(100), tokensRefunded(100, 0), refunded(0)]],
    ['a refund that debits more than the payment credited', [initiated, captured, credited, refunded(101)]],
    ['a refund that debits a negative number of tokens', [initiated, captured, credited, refunded(-1)]],
    ['tokens refunded for a payment not refunded', [initiated, captured, credited, tokensRefunded(100, 0)]],
    ['tokens refunded below zero', [initiated, captured, credited, use(100, 0), refunded(100), tokensRefunded(100, -100)]],
    ['tokens refunded with a balanceAfter the replay disagrees with', [initiated, captured, credited, refunded(100), tokensRefunded(100, 1)]],
  ])('fails loudly on %s', (_name, events) => {
    expect(() => replay(events)).toThrow(LedgerInvariantViolation);
  });
});

describe('token account: evolve re-checks what lots and holds record', () => {
  const purchase = (heldAfter?: number): TokenAccountEvent => ({
    type: 'TokensPurchased',
    data: { userId, transactionId: 'tp', paymentId: 'pay-1', amount: 100, description: null, balanceAfter: 100, occurredAt: at, ...(heldAfter === undefined ? {} : { heldAfter }) },
  });

  it('fails loudly on an event whose heldAfter disagrees with the replay', () => {
    expect(replay([purchase(0)]).balance).toBe(100);
    expect(() => replay([purchase(3)])).toThrow(LedgerInvariantViolation);
  });

  it('fails loudly on a refund request that reserves more of the purchase lot than it has left', () => {
    const initiated: TokenAccountEvent = {
      type: 'PaymentInitiated',
      data: { userId, paymentId: 'pay-1', orderId: 'ORDER-1', packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'mock', occurredAt: at, expiresAt: '2026-11-24T12:00:00.000Z' },
    };
    const captured: TokenAccountEvent = { type: 'PaymentCaptured', data: { userId, paymentId: 'pay-1', orderId: 'ORDER-1', providerTransactionId: 'CAPTURE-1', occurredAt: at } };
    const requested = (tokens: number): TokenAccountEvent => ({ type: 'PaymentRefundRequested', data: { userId, paymentId: 'pay-1', orderId: 'ORDER-1', tokens, occurredAt: at } });
    const spent: TokenAccountEvent = { type: 'TokensUsed', data: { userId, transactionId: 'tu', amount: 60, description: null, balanceAfter: 40, occurredAt: at } };
    expect(replay([initiated, captured, purchase(), requested(100)]).reservedForRefunds).toBe(100);
    expect(() => replay([initiated, captured, purchase(), spent, requested(100)])).toThrow(LedgerInvariantViolation);
  });
});

describe('token account: evolve refuses a corrupt credit, debit, hold or hold end', () => {
  const lotTerms = (lotId: string) => ({ lotId, priority: 100, expiresAt: null });
  const bought = (transactionId: string, amount: number, balanceAfter: number): TokenAccountEvent => ({
    type: 'TokensPurchased',
    data: { userId, transactionId, paymentId: `pay-${transactionId}`, amount, description: null, balanceAfter, heldAfter: 0, occurredAt: at, lot: lotTerms(transactionId) },
  });
  const used = (amount: number, balanceAfter: number, draws: readonly { lotId: string; amount: number }[], heldAfter = 0): TokenAccountEvent => ({
    type: 'TokensUsed',
    data: { userId, transactionId: 'tu', amount, description: null, balanceAfter, heldAfter, occurredAt: at, draws },
  });
  const held = (amount: number, draws: readonly { lotId: string; amount: number }[], totals: { balanceAfter: number; heldAfter: number }): TokenAccountEvent => ({
    type: 'TokensHeld',
    data: { userId, holdId: 'h', amount, description: null, expiresAt: '2026-11-24T12:00:00.000Z', draws, ...totals, occurredAt: at },
  });
  const released = (amount: number, totals: { balanceAfter: number; heldAfter: number }): TokenAccountEvent => ({
    type: 'HoldReleased',
    data: { userId, holdId: 'h', amount, ...totals, occurredAt: at },
  });
  // Two lots of 50; 30 of lot a spent: a has 20 free, b 50, the balance is 70.
  const funded = [bought('a', 50, 50), bought('b', 50, 100), used(30, 70, [{ lotId: 'a', amount: 30 }])];
  const holding = [...funded, held(40, [{ lotId: 'b', amount: 40 }], { balanceAfter: 70, heldAfter: 40 })];

  it('replays the valid stream these cases break', () => {
    expect(replay([...holding, released(40, { balanceAfter: 70, heldAfter: 0 })])).toMatchObject({ balance: 70, held: 0 });
    expect(replay([bought('max', BALANCE_MAX, BALANCE_MAX)]).balance).toBe(BALANCE_MAX);
  });

  it.each<[string, readonly TokenAccountEvent[]]>([
    ['a credit past the maximum balance', [bought('max', BALANCE_MAX, BALANCE_MAX), bought('one', 1, BALANCE_MAX + 1)]],
    ['a credit of no tokens', [...funded, bought('c', 0, 70)]],
    ['a debit of no tokens', [...funded, used(0, 70, [])]],
    ['a debit drawing 0 from one lot', [...funded, used(10, 60, [{ lotId: 'a', amount: 0 }, { lotId: 'b', amount: 10 }])]],
    ['a debit drawing a fraction of a token', [...funded, used(10, 60, [{ lotId: 'a', amount: 9.5 }, { lotId: 'b', amount: 0.5 }])]],
    ['a hold of no tokens', [...funded, held(0, [], { balanceAfter: 70, heldAfter: 0 })]],
    ['a hold recording another balance', [...funded, held(40, [{ lotId: 'b', amount: 40 }], { balanceAfter: 71, heldAfter: 40 })]],
    ['a hold reserving 0 of one lot', [...funded, held(40, [{ lotId: 'a', amount: 0 }, { lotId: 'b', amount: 40 }], { balanceAfter: 70, heldAfter: 40 })]],
    ['a hold reserving more of a lot than it has free', [...funded, held(40, [{ lotId: 'a', amount: 40 }], { balanceAfter: 70, heldAfter: 40 })]],
    ['the end of a hold recording another amount than the hold', [...holding, released(39, { balanceAfter: 70, heldAfter: 0 })]],
    ['the end of a hold recording another held total', [...holding, released(40, { balanceAfter: 70, heldAfter: 40 })]],
    ['the end of a hold recording another balance', [...holding, released(40, { balanceAfter: 69, heldAfter: 0 })]],
  ])('%s', (_, events) => {
    expect(() => replay(events.slice(0, -1))).not.toThrow();
    expect(() => replay(events)).toThrow(LedgerInvariantViolation);
  });
});
