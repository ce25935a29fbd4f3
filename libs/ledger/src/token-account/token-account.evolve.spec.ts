import { fold } from '../decider.js';
import { LedgerInvariantViolation } from '../ledger.errors.js';
import { BALANCE_MAX, GRANT_PRIORITY_DEFAULT, LOT_PRIORITY_DEFAULT, LOT_PRIORITY_MAX, LOT_PRIORITY_MIN } from '../ledger.limits.js';
import { SHORTFALL_COVERED_DESCRIPTION, type PaymentDisputeClosed, type PaymentDisputeOpened, type ShortfallCovered, type TokensChargedBack } from './dispute.events.js';
import type { HoldSettled, TokensHeld } from './hold.events.js';
import { tokenAccountDecider } from './token-account.decider.js';
import { OPENING_LOT_ID, type LotTerms } from './lot.state.js';
import type { TokenAccountEvent, TokensUsed } from './token-account.events.js';

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

  it('fails loudly on an unknown event type, naming it as unknown though it has no time, or no data, either', () => {
    expect(() => replay([{ type: 'TokensGifted', data: {} } as unknown as TokenAccountEvent])).toThrow('unknown token account event {"type":"TokensGifted","data":{}}');
    expect(() => replay([{ type: 'TokensGifted', data: null } as unknown as TokenAccountEvent])).toThrow('unknown token account event {"type":"TokensGifted","data":null}');
  });

  it.each([['not a date', '"yesterday"'], ['missing', 'undefined'], ['empty', '""']])('fails loudly on an event whose occurredAt is %s, naming the time rather than a rule that compares it', (_name, shown) => {
    const occurredAt = shown === 'undefined' ? undefined : (JSON.parse(shown) as string);
    const purchase = { type: 'TokensPurchased', data: { userId, transactionId: 't1', paymentId: 'p1', amount: 10, description: null, balanceAfter: 10, occurredAt } } as unknown as TokenAccountEvent;
    expect(() => replay([purchase])).toThrow(`TokensPurchased has an occurredAt that is not a time: ${shown}`);
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
    refundFailure: null,
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

  describe('a refund request that failed at the provider', () => {
    const requested: TokenAccountEvent = { type: 'PaymentRefundRequested', data: { userId, paymentId, orderId, tokens: 100, occurredAt: '2026-11-24T11:15:00.000Z' } };
    const boughtInLot = { ...credited, data: { ...credited.data, lot: { lotId: 'lot-1', priority: 100, expiresAt: null }, heldAfter: 0 } } as TokenAccountEvent;
    const heldInLot: TokenAccountEvent = {
      type: 'TokensHeld',
      data: { userId, holdId: 'h', amount: 100, description: null, expiresAt: '2026-11-24T13:00:00.000Z', draws: [{ lotId: 'lot-1', amount: 100 }], balanceAfter: 100, heldAfter: 100, occurredAt: at },
    };
    const failed = (tokens = 100): TokenAccountEvent => ({
      type: 'PaymentRefundFailed',
      data: { userId, paymentId, orderId, tokens, providerRefundId: 're_1', reason: 'failed: expired_or_canceled_card', occurredAt: '2026-11-24T11:18:00.000Z' },
    });

    it('ends the request: the payment COMPLETED again with the reason, its tokens no longer reserved in the lot', () => {
      const state = replay([initiated, captured, credited, requested, failed()]);
      expect({ payment: state.payments.get(paymentId), reserved: state.reservedForRefunds, lotReserved: [...state.lots.values()].map((lot) => lot.reserved), balance: state.balance }).toEqual({
        payment: { ...pending, status: 'COMPLETED', providerTransactionId: 'CAPTURE-1', refundFailure: 'failed: expired_or_canceled_card', updatedAt: '2026-11-24T11:18:00.000Z' },
        reserved: 0,
        lotReserved: [0],
        balance: 100,
      });
    });

    it('forgets the reason once a refund is asked for again, or made', () => {
      expect(paymentAfter([initiated, captured, credited, requested, failed(), requested])?.refundFailure).toBeNull();
      expect(paymentAfter([initiated, captured, credited, requested, failed(), refunded(100), tokensRefunded(100, 0)])?.refundFailure).toBeNull();
    });

    it.each<[string, readonly TokenAccountEvent[]]>([
      ['a failed refund of a payment with no refund asked for', [initiated, captured, credited, failed()]],
      // The purchase's lot holds 100 reserved by a hold, which the release would take for the request's.
      ['a failed refund with no request, beside a hold of its lot', [initiated, captured, boughtInLot, heldInLot, failed()]],
      ['a failed refund of a payment already refunded', [initiated, captured, credited, requested, refunded(100), tokensRefunded(100, 0), failed()]],
      ['a failed refund that releases other than the tokens reserved', [initiated, captured, credited, requested, failed(99)]],
    ])('fails loudly on %s', (_name, events) => {
      expect(() => replay(events)).toThrow(LedgerInvariantViolation);
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

  describe('tokens a hold held when the provider refunded, taken when it gave them back', () => {
    // 100 bought into lot-1, 40 of them held; the provider refunds: 60 taken, 40 held back; the hold is released.
    const lotId = 'lot-1';
    const bought = { ...credited, data: { ...credited.data, lot: { lotId, priority: 100, expiresAt: null }, heldAfter: 0 } } as TokenAccountEvent;
    const held: TokenAccountEvent = {
      type: 'TokensHeld',
      data: { userId, holdId: 'h', amount: 40, description: null, expiresAt: '2026-11-24T13:00:00.000Z', draws: [{ lotId, amount: 40 }], balanceAfter: 100, heldAfter: 40, occurredAt: at },
    };
    const refundedHoldingBack = (heldBack?: number, tokensDebited = 60): TokenAccountEvent => ({ ...refunded(tokensDebited), data: { ...refunded(tokensDebited).data, ...(heldBack === undefined ? {} : { heldBack }) } }) as TokenAccountEvent;
    const tookFree: TokenAccountEvent = { ...tokensRefunded(60, 40), data: { ...tokensRefunded(60, 40).data, draws: [{ lotId, amount: 60 }], heldAfter: 40 } } as TokenAccountEvent;
    const released: TokenAccountEvent = { type: 'HoldReleased', data: { userId, holdId: 'h', amount: 40, balanceAfter: 40, heldAfter: 0, occurredAt: at } };
    const takenLater = (amount: number, from = lotId): TokenAccountEvent => ({
      type: 'TokensRefunded',
      data: { userId, transactionId: 'tl', paymentId, amount, description: null, balanceAfter: 40 - amount, occurredAt: at, draws: [{ lotId: from, amount }], heldAfter: 0, heldAtRefund: true },
    });
    const before = [initiated, captured, bought, held];

    it('remembers what the refund held back, takes it in parts, adds it to tokensDebited, and forgets it once taken', () => {
      expect(replay([...before, refundedHoldingBack(40), tookFree]).refundsHeldBack.toJS()).toEqual({ [paymentId]: { lotId, amount: 40 } });
      const part = replay([...before, refundedHoldingBack(40), tookFree, released, takenLater(15)]);
      expect({ debited: part.payments.get(paymentId)?.tokensDebited, heldBack: part.refundsHeldBack.toJS() }).toEqual({ debited: 75, heldBack: { [paymentId]: { lotId, amount: 25 } } });
      const all = replay([...before, refundedHoldingBack(40), tookFree, released, takenLater(40)]);
      expect({ debited: all.payments.get(paymentId)?.tokensDebited, heldBack: all.refundsHeldBack.size, balance: all.balance, lots: all.lots.size }).toEqual({ debited: 100, heldBack: 0, balance: 0, lots: 0 });
    });

    it.each<[string, readonly TokenAccountEvent[]]>([
      ['tokens taken later by a refund that held none back', [...before, refundedHoldingBack(), tookFree, released, takenLater(40)]],
      ['more taken later than the refund held back', [...before, refundedHoldingBack(30, 60), tookFree, released, takenLater(40)]],
      ["tokens taken later from another lot than the purchase's", [...before, refundedHoldingBack(40), tookFree, released, takenLater(40, OPENING_LOT_ID)]],
      ['a refund holding back more than holds hold of the lot', [...before, refundedHoldingBack(41, 59)]],
      ['a refund holding back more than it left untaken', [...before, refundedHoldingBack(40, 61)]],
      ['a refund holding back a part of a token', [...before, refundedHoldingBack(0.5)]],
    ])('fails loudly on %s', (_name, events) => {
      expect(() => replay(events)).toThrow(LedgerInvariantViolation);
    });
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

describe('token account: evolve refuses a corrupt hold, grant, refund or dispute event', () => {
  // Each case replays a stream decide could have written, then the same stream with one event
  // wrong: the first folds, the second fails loudly, so the check (not another) refuses it.
  const lotId = 'lot-paid';
  const paymentId = 'pay-1';
  const orderId = 'ORDER-1';
  const later = '2026-11-24T12:00:00.000Z';
  const paidLot = { lotId, priority: LOT_PRIORITY_DEFAULT, expiresAt: null };
  const initiated = (id = paymentId, tokens = 100): TokenAccountEvent => ({
    type: 'PaymentInitiated',
    data: { userId, paymentId: id, orderId: `order-${id}`, packageId: 'starter', tokens, amount: 500, currency: 'USD', provider: 'stripe', occurredAt: at, expiresAt: later },
  });
  const captured = (id = paymentId): TokenAccountEvent => ({ type: 'PaymentCaptured', data: { userId, paymentId: id, orderId: `order-${id}`, providerTransactionId: `ch-${id}`, occurredAt: at } });
  /** A purchase crediting its own lot, or (`lot` null: written before lots) the opening lot. */
  const purchased = (id: string, amount: number, balanceAfter: number, lot: LotTerms | null = { ...paidLot, lotId: `lot-${id}` }): TokenAccountEvent => ({
    type: 'TokensPurchased',
    data: { userId, transactionId: `tp-${id}`, paymentId: id, amount, description: null, balanceAfter, occurredAt: at, ...(lot === null ? {} : { lot, heldAfter: 0 }) },
  });
  const paid = [initiated(), captured(), purchased(paymentId, 100, 100, paidLot)];
  const held = (amount: number): TokensHeld => ({
    type: 'TokensHeld',
    data: { userId, holdId: 'hold-1', amount, description: null, expiresAt: later, draws: [{ lotId, amount }], balanceAfter: 100, heldAfter: amount, occurredAt: at },
  });
  const released = (amount: number): TokenAccountEvent => ({ type: 'HoldReleased', data: { userId, holdId: 'hold-1', amount, balanceAfter: 100, heldAfter: 0, occurredAt: at } });
  const settled = (settledAmount: number, releasedAmount: number): HoldSettled => ({
    type: 'HoldSettled',
    data: {
      userId,
      holdId: 'hold-1',
      amount: 40,
      settledAmount,
      releasedAmount,
      transactionId: 'tx-settle',
      description: null,
      draws: [{ lotId, amount: settledAmount }],
      balanceAfter: 100 - settledAmount,
      heldAfter: 0,
      occurredAt: at,
    },
  });
  /** A settle as written before ADR 0028: the HoldSettled records no debit, the TokensUsed naming the hold debits. */
  const settledBefore = (settledAmount: number, releasedAmount: number): HoldSettled => {
    const { draws: _draws, description: _description, ...data } = settled(settledAmount, releasedAmount).data;
    return { type: 'HoldSettled', data: { ...data, balanceAfter: 100 } };
  };
  const usedFor = (holdId: string, amount: number): TokensUsed => ({
    type: 'TokensUsed',
    data: { userId, transactionId: 'tx-settle', amount, description: null, balanceAfter: 100 - amount, occurredAt: at, draws: [{ lotId, amount }], holdId, heldAfter: 0 },
  });
  const granted: TokenAccountEvent = {
    type: 'TokensGranted',
    data: { userId, transactionId: 'tx-grant', amount: 20, reason: 'Welcome', lot: { lotId: 'lot-grant', priority: GRANT_PRIORITY_DEFAULT, expiresAt: null }, balanceAfter: 120, heldAfter: 0, occurredAt: at },
  };
  const voided = (voidedLot: string, amount: number, balanceAfter: number): TokenAccountEvent => ({
    type: 'GrantVoided',
    data: { userId, transactionId: 'tx-void', lotId: voidedLot, amount, reason: 'Granted by mistake', draws: [{ lotId: voidedLot, amount }], balanceAfter, heldAfter: 0, occurredAt: at },
  });
  const refundRequested = (tokens: number, id = paymentId): TokenAccountEvent => ({ type: 'PaymentRefundRequested', data: { userId, paymentId: id, orderId: `order-${id}`, tokens, occurredAt: at } });
  const disputeOpened = (id = paymentId): PaymentDisputeOpened => ({
    type: 'PaymentDisputeOpened',
    data: { userId, paymentId: id, orderId: `order-${id}`, disputeId: 'dp-1', amount: 500, currency: 'USD', reason: 'fraudulent', occurredAt: at },
  });
  const disputeClosed = (outcome: 'won' | 'lost', tokens: number, tokensDebited: number, shortfallAfter: number, id = paymentId): PaymentDisputeClosed => ({
    type: 'PaymentDisputeClosed',
    data: { userId, paymentId: id, orderId: `order-${id}`, disputeId: 'dp-1', outcome, tokens, tokensDebited, shortfallAfter, occurredAt: at },
  });
  const chargedBack = (amount: number, balanceAfter: number): TokensChargedBack => ({
    type: 'TokensChargedBack',
    data: { userId, transactionId: 'tx-dispute', paymentId, disputeId: 'dp-1', amount, description: 'Chargeback', balanceAfter, heldAfter: 0, draws: [{ lotId, amount }], occurredAt: at },
  });
  const covered = (amount: number, shortfallAfter: number, balanceAfter: number): ShortfallCovered => ({
    type: 'ShortfallCovered',
    data: { userId, transactionId: 'tx-cover', amount, description: SHORTFALL_COVERED_DESCRIPTION, balanceAfter, heldAfter: 0, shortfallAfter, draws: [{ lotId: 'lot-grant', amount }], occurredAt: at },
  });

  function expectRefused(valid: readonly TokenAccountEvent[], corrupt: readonly TokenAccountEvent[]): void {
    expect(() => replay(valid)).not.toThrow();
    expect(() => replay(corrupt)).toThrow(LedgerInvariantViolation);
  }

  it('fails loudly on a settle that debits a lot the hold did not reserve, or more of it than reserved', () => {
    // The hold reserved 40 of the paid lot only; the grant's 20 are free.
    const heldBesideGrant: TokensHeld = { ...held(40), data: { ...held(40).data, balanceAfter: 120 } };
    const drawing = (draws: HoldSettled['data']['draws']): HoldSettled => ({ ...settled(30, 10), data: { ...settled(30, 10).data, balanceAfter: 90, draws } });
    const valid = [...paid, granted, heldBesideGrant, drawing([{ lotId, amount: 30 }])];
    expect(replay(valid)).toMatchObject({ balance: 90, held: 0 });
    expectRefused(valid, [...paid, granted, heldBesideGrant, drawing([{ lotId: 'lot-grant', amount: 30 }])]);
    expectRefused(valid, [...paid, granted, heldBesideGrant, drawing([{ lotId, amount: 10 }, { lotId: 'lot-grant', amount: 20 }])]);
    // Within the lot's free tokens, but beyond what the hold set aside there.
    const more: HoldSettled = { ...settled(40, 0), data: { ...settled(40, 0).data, amount: 30, settledAmount: 30, releasedAmount: 0, draws: [{ lotId, amount: 10 }, { lotId, amount: 25 }] } };
    expectRefused(valid, [...paid, held(30), more]);
  });

  it('fails loudly on a lot expiry recorded before the lot expires, or drawing from another lot', () => {
    const expiring: TokenAccountEvent = {
      type: 'TokensGranted',
      data: { userId, transactionId: 'tx-grant', amount: 20, reason: 'Welcome', lot: { lotId: 'lot-grant', priority: GRANT_PRIORITY_DEFAULT, expiresAt: later }, balanceAfter: 120, heldAfter: 0, occurredAt: at },
    };
    const expired = (occurredAt: string, drawnLot = 'lot-grant'): TokenAccountEvent => ({
      type: 'LotExpired',
      data: { userId, transactionId: 'tx-expiry', lotId: 'lot-grant', amount: 20, expiresAt: later, draws: [{ lotId: drawnLot, amount: 20 }], balanceAfter: 100, heldAfter: 0, occurredAt },
    });
    const valid = [...paid, expiring, expired(later)];
    expect(replay(valid)).toMatchObject({ balance: 100 });
    expectRefused(valid, [...paid, expiring, expired('2026-11-24T11:59:59.999Z')]);
    expectRefused(valid, [...paid, expiring, expired(later, lotId)]);
    // A lot without an expiry never expires.
    expectRefused(valid, [...paid, granted, expired(later)]);
  });

  it('fails loudly on a lot expiry that takes less or more than the lot\'s free tokens, or records another expiresAt than the lot\'s', () => {
    const expiring: TokenAccountEvent = {
      type: 'TokensGranted',
      data: { userId, transactionId: 'tx-grant', amount: 20, reason: 'Welcome', lot: { lotId: 'lot-grant', priority: GRANT_PRIORITY_DEFAULT, expiresAt: later }, balanceAfter: 120, heldAfter: 0, occurredAt: at },
    };
    const expired = (amount: number, expiresAt = later): TokenAccountEvent => ({
      type: 'LotExpired',
      data: { userId, transactionId: 'tx-expiry', lotId: 'lot-grant', amount, expiresAt, draws: [{ lotId: 'lot-grant', amount }], balanceAfter: 120 - amount, heldAfter: 0, occurredAt: later },
    });
    const valid = [...paid, expiring, expired(20)];
    expectRefused(valid, [...paid, expiring, expired(19)]);
    expectRefused(valid, [...paid, expiring, expired(20, '2099-01-01T00:00:00.000Z')]);
    expect(() => replay([...paid, expiring, expired(1)])).toThrow('expiry of lot lot-grant takes 1 of its 20 free tokens');
    // What a hold reserves in the lot stays with it: the expiry takes the free part only.
    const heldInGrant: TokensHeld = { ...held(5), data: { ...held(5).data, draws: [{ lotId: 'lot-grant', amount: 5 }], balanceAfter: 120 } };
    const expiredFree: TokenAccountEvent = { ...expired(15), data: { ...(expired(15).data as object), heldAfter: 5 } } as TokenAccountEvent;
    const expiredAll: TokenAccountEvent = { ...expired(20), data: { ...(expired(20).data as object), heldAfter: 5 } } as TokenAccountEvent;
    expect(replay([...paid, expiring, heldInGrant, expiredFree])).toMatchObject({ balance: 105, held: 5 });
    expect(() => replay([...paid, expiring, heldInGrant, expiredAll])).toThrow(LedgerInvariantViolation);
  });

  it('fails loudly on a hold expiry that records another expiresAt than the hold\'s', () => {
    const expiredHold = (expiresAt: string): TokenAccountEvent => ({ type: 'HoldExpired', data: { userId, holdId: 'hold-1', amount: 40, expiresAt, balanceAfter: 100, heldAfter: 0, occurredAt: later } });
    // The same instant written another way is the same expiry.
    expect(replay([...paid, held(40), expiredHold('2026-11-24T12:00:00Z')])).toMatchObject({ balance: 100, held: 0 });
    expectRefused([...paid, held(40), expiredHold(later)], [...paid, held(40), expiredHold('2099-01-01T00:00:00.000Z')]);
    expect(() => replay([...paid, held(40), expiredHold('2026-11-24T11:30:00.000Z')])).toThrow('expiry of hold hold-1 records expiresAt "2026-11-24T11:30:00.000Z", not the hold\'s 2026-11-24T12:00:00.000Z');
  });

  it('fails loudly on a void that takes less than the grant\'s remainder, or a grant a hold holds part of', () => {
    const valid = [...paid, granted, voided('lot-grant', 20, 100)];
    expectRefused(valid, [...paid, granted, voided('lot-grant', 5, 115)]);
    expect(() => replay([...paid, granted, voided('lot-grant', 5, 115)])).toThrow('void of lot lot-grant takes 5 of its 20 tokens, 0 of them held');
    const heldInGrant: TokensHeld = { ...held(5), data: { ...held(5).data, draws: [{ lotId: 'lot-grant', amount: 5 }], balanceAfter: 120 } };
    const voidedWhileHeld: TokenAccountEvent = { ...voided('lot-grant', 20, 100), data: { ...(voided('lot-grant', 20, 100).data as object), heldAfter: 5 } } as TokenAccountEvent;
    expect(() => replay([...paid, granted, heldInGrant, voidedWhileHeld])).toThrow('void of lot lot-grant takes 20 of its 20 tokens, 5 of them held');
  });

  it('fails loudly on a credit or a hold\'s reservation of part of a token, or a lot of a priority outside the range', () => {
    const grantOf = (amount: number, priority = GRANT_PRIORITY_DEFAULT): TokenAccountEvent => ({
      type: 'TokensGranted',
      data: { userId, transactionId: 'tx-grant', amount, reason: 'Welcome', lot: { lotId: 'lot-grant', priority, expiresAt: null }, balanceAfter: 100 + amount, heldAfter: 0, occurredAt: at },
    });
    expectRefused([...paid, grantOf(1)], [...paid, grantOf(0.5)]);
    expect(() => replay([...paid, grantOf(0.5)])).toThrow('a credit of 0.5 tokens');
    expectRefused([...paid, grantOf(20, LOT_PRIORITY_MAX)], [...paid, grantOf(20, LOT_PRIORITY_MAX + 1)]);
    expectRefused([...paid, grantOf(20, LOT_PRIORITY_MIN)], [...paid, grantOf(20, LOT_PRIORITY_MIN - 1)]);
    expect(() => replay([...paid, grantOf(20, 2.5)])).toThrow(`lot lot-grant has priority 2.5, outside ${LOT_PRIORITY_MIN} to ${LOT_PRIORITY_MAX}`);
    // Two lots of 20 and 100: a hold of 10 reserving 9.5 and 0.5 of them.
    const split = (first: number): TokensHeld => ({ ...held(10), data: { ...held(10).data, draws: [{ lotId: 'lot-grant', amount: first }, { lotId, amount: 10 - first }], balanceAfter: 120 } });
    expectRefused([...paid, grantOf(20), split(9)], [...paid, grantOf(20), split(9.5)]);
    expect(() => replay([...paid, grantOf(20), split(9.5)])).toThrow('hold hold-1 reserves 9.5 from lot lot-grant without them');
  });

  it('fails loudly on a hold that expires when or before it is placed, or placed again under the id of one that ended', () => {
    const heldUntil = (expiresAt: string): TokensHeld => ({ ...held(40), data: { ...held(40).data, expiresAt } });
    expectRefused([...paid, heldUntil('2026-11-24T11:00:01.000Z')], [...paid, heldUntil(at)]);
    expect(() => replay([...paid, heldUntil('2026-11-24T10:00:00.000Z')])).toThrow(`hold hold-1 expires at 2026-11-24T10:00:00.000Z, not after it was placed (${at})`);
    expectRefused([...paid, held(40), released(40), { ...held(30), data: { ...held(30).data, holdId: 'hold-2' } }], [...paid, held(40), released(40), held(30)]);
    expect(() => replay([...paid, held(40), released(40), held(30)])).toThrow('hold hold-1 placed again after it ended');
  });

  it('fails loudly on a hold expired before its expiresAt, or settled or released at it or after, each checked at the exact instant', () => {
    const justBefore = '2026-11-24T11:59:59.999Z';
    const timed = <T extends TokenAccountEvent>(event: T, occurredAt: string): T => ({ ...event, data: { ...event.data, occurredAt } });
    const expiredHold = (occurredAt: string): TokenAccountEvent => ({ type: 'HoldExpired', data: { userId, holdId: 'hold-1', amount: 40, expiresAt: later, balanceAfter: 100, heldAfter: 0, occurredAt } });
    // The hold of 40 expires at `later`.
    expectRefused([...paid, held(40), expiredHold(later)], [...paid, held(40), expiredHold(justBefore)]);
    expectRefused([...paid, held(40), timed(settled(25, 15), justBefore)], [...paid, held(40), timed(settled(25, 15), later)]);
    expectRefused([...paid, held(40), timed(released(40), justBefore)], [...paid, held(40), timed(released(40), later)]);
    // Written before ADR 0028: the same for its HoldSettled, whatever the TokensUsed after it says.
    expectRefused([...paid, held(40), timed(settledBefore(25, 15), justBefore), usedFor('hold-1', 25)], [...paid, held(40), timed(settledBefore(25, 15), later), usedFor('hold-1', 25)]);
    expect(() => replay([...paid, held(40), timed(released(40), '2026-11-24T12:00:00.001Z')])).toThrow('hold hold-1 released at or after its expiry');
    expect(() => replay([...paid, held(40), expiredHold(justBefore)])).toThrow('hold hold-1 expired before its expiry');
  });

  it('fails loudly on a hold or a lot whose expiresAt is not a time, naming it, rather than keep one that never expires', () => {
    const heldUntil = (expiresAt: string): TokensHeld => ({ ...held(40), data: { ...held(40).data, expiresAt } });
    expectRefused([...paid, heldUntil(later)], [...paid, heldUntil('soon')]);
    expect(() => replay([...paid, heldUntil('soon')])).toThrow('hold hold-1 has an expiresAt that is not a time: "soon"');
    expect(() => replay([...paid, heldUntil('')])).toThrow('hold hold-1 has an expiresAt that is not a time: ""');
    const grantLot = { lotId: 'lot-grant', priority: GRANT_PRIORITY_DEFAULT, expiresAt: 'next week' };
    const granted: TokenAccountEvent = { type: 'TokensGranted', data: { userId, transactionId: 'tg', amount: 10, reason: 'x', lot: grantLot, balanceAfter: 110, heldAfter: 0, occurredAt: at } };
    expect(() => replay([...paid, granted])).toThrow('lot lot-grant has an expiresAt that is not a time: "next week"');
    expect(replay([...paid, { ...granted, data: { ...granted.data, lot: { ...grantLot, expiresAt: later } } }]).balance).toBe(110);
  });

  it('fails loudly on a hold ended at a time that is not one, naming the time, not the expiry it is compared with', () => {
    const untimed = <T extends TokenAccountEvent>(event: T): T => ({ ...event, data: { ...event.data, occurredAt: 'soon' } });
    expectRefused([...paid, held(40), released(40)], [...paid, held(40), untimed(released(40))]);
    expect(() => replay([...paid, held(40), untimed(released(40))])).toThrow('HoldReleased has an occurredAt that is not a time: "soon"');
    expect(() => replay([...paid, held(40), untimed(settled(25, 15))])).toThrow('HoldSettled has an occurredAt that is not a time: "soon"');
  });

  it('fails loudly on a void that draws from another lot than the grant it voids', () => {
    const valid = [...paid, granted, voided('lot-grant', 20, 100)];
    expect(replay(valid)).toMatchObject({ balance: 100 });
    const drawingPaid: TokenAccountEvent = { ...voided('lot-grant', 20, 100), data: { ...voided('lot-grant', 20, 100).data, draws: [{ lotId, amount: 20 }] } } as TokenAccountEvent;
    expectRefused(valid, [...paid, granted, drawingPaid]);
  });

  it('fails loudly on a usage naming a hold that was released, or never placed, rather than just settled', () => {
    const valid = [...paid, held(40), settledBefore(25, 15), usedFor('hold-1', 25)];
    expect(replay(valid)).toMatchObject({ balance: 75, held: 0 });
    expectRefused(valid, [...paid, held(40), released(40), usedFor('hold-1', 25)]);
    expectRefused(valid, [...paid, usedFor('hold-none', 25)]);
  });

  it('fails loudly on a settle whose settled and released amounts do not add up to the hold, in either form', () => {
    expectRefused([...paid, held(40), settled(25, 15)], [...paid, held(40), settled(25, 14)]);
    expectRefused([...paid, held(40), settled(25, 15)], [...paid, held(40), settled(24, 15)]);
    expectRefused([...paid, held(40), settledBefore(25, 15), usedFor('hold-1', 25)], [...paid, held(40), settledBefore(25, 16), usedFor('hold-1', 25)]);
  });

  it('fails loudly on a void of a lot that is not a grant (a purchase is taken back by a refund or a dispute, never voided)', () => {
    expect(replay([...paid, granted, voided('lot-grant', 20, 100)]).lots.has('lot-grant')).toBe(false);
    expectRefused([...paid, granted, voided('lot-grant', 20, 100)], [...paid, granted, voided(lotId, 20, 100)]);
  });

  it('fails loudly on a refund request of a payment not completed, or reserving other than its tokens', () => {
    // A purchase written before lots credits the opening lot, which a payment without its own purchase would reserve from.
    const opening = purchased('pay-old', 200, 200, null);
    const completed = [opening, initiated(), captured(), purchased(paymentId, 100, 300, null)];
    expect(replay([...completed, refundRequested(100)]).reservedForRefunds).toBe(100);
    expectRefused([...completed, refundRequested(100)], [opening, initiated(), refundRequested(100)]);
    expectRefused([...completed, refundRequested(100)], [opening, initiated(), { type: 'PaymentFailed', data: { userId, paymentId, orderId, reason: 'card_declined', occurredAt: at } }, refundRequested(100)]);
    expectRefused([...completed, refundRequested(100)], [...completed, refundRequested(50)]);
    expectRefused([...completed, refundRequested(100)], [...completed, refundRequested(99)]);
  });

  it('fails loudly on a dispute of a payment never captured', () => {
    expectRefused([...paid, disputeOpened()], [initiated(), disputeOpened()]);
    expectRefused([...paid, disputeOpened()], [initiated(), { type: 'PaymentExpired', data: { userId, paymentId, orderId, reason: 'Payment timed out', occurredAt: later } }, disputeOpened()]);
  });

  it('fails loudly on a dispute closed on another payment than the one it was opened on', () => {
    const both = [...paid, initiated('pay-2'), captured('pay-2'), purchased('pay-2', 50, 150), disputeOpened()];
    expect(replay([...both, disputeClosed('won', 0, 0, 0)]).disputes.get('dp-1')?.status).toBe('won');
    expectRefused([...both, disputeClosed('won', 0, 0, 0)], [...both, disputeClosed('won', 0, 0, 0, 'pay-2')]);
  });

  it('fails loudly on a dispute closed with tokensDebited below 0 or above what it owes, or a won dispute that takes tokens', () => {
    const open = [...paid, disputeOpened()];
    expect(replay([...open, disputeClosed('lost', 100, 100, 0), chargedBack(100, 0)])).toMatchObject({ balance: 0, shortfall: 0 });
    expect(replay([...open, disputeClosed('lost', 100, 0, 100)]).shortfall).toBe(100);
    // Each corrupt close records the shortfallAfter its own numbers give, so only the range check can refuse it.
    expectRefused([...open, disputeClosed('lost', 100, 100, 0)], [...open, disputeClosed('lost', 100, -1, 101)]);
    expectRefused([...open, disputeClosed('lost', 100, 100, 0)], [...open, disputeClosed('lost', 100, 101, -1)]);
    expectRefused([...open, disputeClosed('won', 0, 0, 0)], [...open, disputeClosed('won', 100, 100, 0)]);
    expectRefused([...open, disputeClosed('won', 0, 0, 0)], [...open, disputeClosed('won', 100, 0, 100)]);
  });

  it('fails loudly on tokens charged back for a dispute that is open or won, not lost', () => {
    const open = [...paid, disputeOpened()];
    expectRefused([...open, disputeClosed('lost', 100, 100, 0), chargedBack(100, 0)], [...open, chargedBack(100, 0)]);
    expectRefused([...open, disputeClosed('lost', 100, 100, 0), chargedBack(100, 0)], [...open, disputeClosed('won', 0, 0, 0), chargedBack(100, 0)]);
  });

  it('fails loudly on a cover of more than the shortfall, or one whose shortfallAfter disagrees with the replay', () => {
    // 60 spent, then the dispute is lost: 40 are taken back, 60 owed; a grant of 100 covers them.
    const owing = [...paid, use(60, 40), disputeOpened(), disputeClosed('lost', 100, 40, 60), chargedBack(40, 0), { ...granted, data: { ...granted.data, amount: 100, balanceAfter: 100 } }];
    expect(replay([...owing, covered(60, 0, 40)])).toMatchObject({ balance: 40, shortfall: 0 });
    expect(replay([...owing, covered(30, 30, 70)])).toMatchObject({ balance: 70, shortfall: 30 });
    expectRefused([...owing, covered(60, 0, 40)], [...owing, covered(61, -1, 39)]);
    expectRefused([...owing, covered(60, 0, 40)], [...owing, covered(100, -40, 0)]);
    expectRefused([...owing, covered(30, 30, 70)], [...owing, covered(30, 20, 70)]);
    expectRefused([...owing, covered(30, 30, 70)], [...owing, covered(30, 31, 70)]);
  });

  function use(amount: number, balanceAfter: number): TokensUsed {
    return { type: 'TokensUsed', data: { userId, transactionId: 'tu', amount, description: null, balanceAfter, occurredAt: at, draws: [{ lotId, amount }], heldAfter: 0 } };
  }
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
