import { createHash } from 'node:crypto';
import { fold } from '../decider.js';
import { BALANCE_MAX, DESCRIPTION_LENGTH_MAX, LOT_PRIORITY_DEFAULT, VOIDED_GRANTS_REMEMBERED_MAX } from '../ledger.limits.js';
import { SnapshotRejected } from '../snapshot.js';
import type { TokenAccountCommand } from './token-account.commands.js';
import { tokenAccountDecider } from './token-account.decider.js';
import type { TokenAccountEvent, TokensAdjusted, TokensPurchased, TokensUsed } from './token-account.events.js';
import type { TokenAccountState } from './token-account.state.js';
import type { DisputeStatus } from './dispute.state.js';
import { tokenAccountSnapshot } from './token-account.snapshot.js';
import { plainState } from '../testing/plain-state.js';

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

/**
 * Decoding `value` is refused as a damaged snapshot (the loader then replays the stream), for `reason`: the
 * problem the loader logs. Each table below damages one field, and the reason shows that the check of that
 * field refused it, not a later total that the damage happens to upset as well.
 */
function expectRefused(value: unknown, reason: string): void {
  const decode = () => tokenAccountSnapshot.decode(value);
  expect(decode).toThrow(SnapshotRejected);
  expect(decode).toThrow(new SnapshotRejected(`token account snapshot v${tokenAccountSnapshot.version}: ${reason}`));
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

  it('keeps what a refund held back, and refuses an entry of a payment not refunded, beyond its lot, or of a lot it does not have', () => {
    const now = new Date(at);
    const paymentId = 'pay-held';
    const commands: TokenAccountCommand[] = [
      { type: 'InitiatePayment', data: { userId, paymentId, orderId: 'O-1', packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'mock', now, expiresAt: new Date(now.getTime() + 3_600_000), pendingPaymentsMax: 10 } },
      { type: 'CapturePayment', data: { userId, paymentId, outcome: { status: 'captured', providerTransactionId: 'C-1' }, transactionId: 'lot-held', now } },
      { type: 'HoldTokens', data: { userId, holdId: 'h', amount: 40, description: null, ttlSeconds: 600, ttlSecondsMax: 3600, transactionId: 'tx-h', now } },
      { type: 'RefundPayment', data: { userId, paymentId, providerRefundId: 'R-1', transactionId: 'tx-r', now } },
    ];
    let current = tokenAccountDecider.initialState;
    for (const command of commands) current = fold(tokenAccountDecider, current, tokenAccountDecider.decide(command, current));
    expect(current.refundsHeldBack.toJS()).toEqual({ [paymentId]: { lotId: 'lot-held', amount: 40 } });
    const encoded = stored(tokenAccountSnapshot.encode(current)) as Record<string, unknown>;
    expect(plainState(tokenAccountSnapshot.decode(encoded))).toEqual(plainState(current));
    const entry = (changes: Record<string, unknown>) => ({ ...encoded, refundsHeldBack: [{ paymentId, lotId: 'lot-held', amount: 40, ...changes }] });
    expectRefused(entry({ paymentId: 'p1' }), 'a refund held back is not of a refunded payment');
    expectRefused(entry({ amount: 0 }), 'a refund held back is not of a lot with tokens');
    expectRefused(entry({ lotId: 'no-lot' }), 'a refund held back is not of a lot with tokens');
    const otherLot = { ...encoded, lots: [...(encoded.lots as object[]), { lotId: 'other', priority: 100, expiresAt: null, source: 'grant', paymentId: null, original: 1, remaining: 1, reserved: 0, sequence: 9 }], balance: (encoded.balance as number) + 1 };
    expectRefused({ ...otherLot, refundsHeldBack: [{ paymentId, lotId: 'other', amount: 40 }] }, "a refund held back is not of its purchase's lot");
    expectRefused({ ...encoded, refundsHeldBack: [{ paymentId, lotId: 'lot-held', amount: 20 }, { paymentId, lotId: 'lot-held', amount: 20 }] }, 'a payment holds back twice');
    expectRefused({ ...encoded, refundsHeldBack: undefined }, 'refundsHeldBack is not a list');
  });

  it('keeps the latest time of the stream, refuses one that is not a time in milliseconds, and disagrees with a later last event', () => {
    const encoded = stored(tokenAccountSnapshot.encode(state)) as Record<string, unknown>;
    expect(encoded.lastOccurredAtMs).toBe(Date.parse(at));
    expect(tokenAccountSnapshot.decode(encoded).lastOccurredAtMs).toBe(Date.parse(at));
    for (const value of [-1, 1.5, '1764000000000', undefined, 8.64e15 + 1]) expectRefused({ ...encoded, lastOccurredAtMs: value }, 'lastOccurredAtMs is not a time in milliseconds');
    expect(tokenAccountSnapshot.decode({ ...encoded, lastOccurredAtMs: 8.64e15 }).lastOccurredAtMs).toBe(8.64e15);
    // A snapshot whose time is earlier than the event it claims to follow was not made from that stream.
    expect(tokenAccountSnapshot.agreesWith({ ...state, lastOccurredAtMs: Date.parse(at) - 1 }, used)).toBe(false);
    expect(tokenAccountSnapshot.agreesWith({ ...state, lastOccurredAtMs: Date.parse(at) + 1 }, used)).toBe(true);
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
  it.each<[string, unknown, string]>([
    ['not an object', [1, 2], 'snapshot is not an object'],
    ['null', null, 'snapshot is not an object'],
    ['a text', 'snapshot', 'snapshot is not an object'],
    ['a negative balance', { ...encoded, balance: -1 }, 'balance is not a valid balance'],
    ['a fractional balance', { ...encoded, balance: 1.5 }, 'balance is not a valid balance'],
    ['a balance as text', { ...encoded, balance: '6' }, 'balance is not a valid balance'],
    ['purchases that are not a list', { ...encoded, purchases: {} }, 'a collection is not a list'],
    ['a purchase that is not an object', { ...encoded, purchases: ['p1'] }, 'purchase is not an object'],
    ['a purchase with a zero amount', { ...encoded, purchases: [{ ...purchase, amount: 0 }] }, 'purchase amount is not a token amount'],
    ['a purchase without a payment id', { ...encoded, purchases: [{ ...purchase, paymentId: undefined }] }, 'purchase ids are not strings'],
    ['a purchase with a bad time', { ...encoded, purchases: [{ ...purchase, occurredAt: 'yesterday' }] }, 'purchase occurredAt is not a time'],
    ['the same payment twice', { ...encoded, purchases: [purchase, purchase] }, 'payment p1 appears twice'],
  ])('rejects a snapshot with %s, naming what is wrong', (_name, value, reason) => {
    expectRefused(value, reason);
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
  const purchaseLot = { lotId: 'tc', priority: 100, expiresAt: '2026-12-24T11:00:00.000Z' };

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
    ['a refund that failed, captured again', { status: 'COMPLETED', refundFailure: 'failed: expired_or_canceled_card' }],
  ])('accepts a payment with %s', (_name, change) => {
    expect(tokenAccountSnapshot.decode(withPayment(change)).payments.get(paymentId)).toMatchObject(change);
  });

  it('reads a payment written before failed refunds were recorded as one whose refund never failed', () => {
    expect(tokenAccountSnapshot.decode(withPayment({ refundFailure: undefined })).payments.get(paymentId)?.refundFailure).toBeNull();
  });

  it.each<[string, unknown, string]>([
    ['a balance above the maximum', { ...encoded, balance: BALANCE_MAX + 1 }, 'balance is not a valid balance'],
    ['payments that are not a list', { ...encoded, payments: {} }, 'a collection is not a list'],
    ['no purchases', { ...encoded, purchases: undefined }, 'a collection is not a list'],
    ['a payment that is not an object', { ...encoded, payments: ['pay-1'] }, 'payment is not an object'],
    ['the same payment twice', { ...encoded, payments: [payment, payment] }, 'payment pay-1 appears twice'],
    ['a payment whose user is not text', withPayment({ userId: 7 }), 'payment ids are not strings'],
    ['a payment without an id', withPayment({ paymentId: undefined }), 'payment ids are not strings'],
    ['a payment whose order is not text', withPayment({ orderId: null }), 'payment ids are not strings'],
    ['a payment whose package is not text', withPayment({ packageId: 1 }), 'payment ids are not strings'],
    ['a payment whose provider is not text', withPayment({ provider: false }), 'payment ids are not strings'],
    ['a payment of no tokens', withPayment({ tokens: 0 }), 'payment tokens is not a token amount'],
    ['a payment of tokens as text', withPayment({ tokens: '100' }), 'payment tokens is not a token amount'],
    ['a payment of fractional tokens', withPayment({ tokens: 1.5 }), 'payment tokens is not a token amount'],
    ['a payment with a price of 0', withPayment({ amount: 0 }), 'payment amount is not a price'],
    ['a payment with a price as text', withPayment({ amount: '500' }), 'payment amount is not a price'],
    ['a payment in a currency of four letters', withPayment({ currency: 'USDX' }), 'payment currency is not a currency'],
    ['a payment in a currency in lower case', withPayment({ currency: 'usd' }), 'payment currency is not a currency'],
    ['a payment in a currency that is not text', withPayment({ currency: 840 }), 'payment currency is not a currency'],
    ['a payment with a bad start time', withPayment({ occurredAt: 'yesterday' }), 'payment times are not times'],
    ['a payment with a bad expiry', withPayment({ expiresAt: null }), 'payment times are not times'],
    ['a payment with a bad update time', withPayment({ updatedAt: 12 }), 'payment times are not times'],
    ['a payment with an unknown status', withPayment({ status: 'SETTLED' }), 'payment status is not a status'],
    ['a payment with an unknown failure', withPayment({ failure: 'timeout' }), 'payment failure is not valid'],
    ['a payment whose failure reason is not text', withPayment({ failureReason: 3 }), 'payment references are not valid'],
    ['a payment whose capture reference is not text', withPayment({ providerTransactionId: 3 }), 'payment references are not valid'],
    ['a payment whose refund reference is not text', withPayment({ providerRefundId: {} }), 'payment references are not valid'],
    ['a refund failure on a payment not COMPLETED', withPayment({ refundFailure: 'failed: expired_or_canceled_card' }), 'payment refundFailure is not valid'],
    ['a refund failure that is not text', withPayment({ status: 'COMPLETED', refundFailure: 5 }), 'payment refundFailure is not valid'],
    ['a payment that debited a negative number of tokens', withPayment({ tokensDebited: -1 }), 'payment tokensDebited is not valid'],
    ['a payment that debited a fractional number of tokens', withPayment({ tokensDebited: 0.5 }), 'payment tokensDebited is not valid'],
    ['a payment that debited tokens given as text', withPayment({ tokensDebited: '100' }), 'payment tokensDebited is not valid'],
    ['a purchase whose user is not text', withPurchase({ userId: 1 }), 'purchase ids are not strings'],
    ['a purchase whose transaction is not text', withPurchase({ transactionId: null }), 'purchase ids are not strings'],
    ['a purchase of tokens as text', withPurchase({ amount: '100' }), 'purchase amount is not a token amount'],
    ['a purchase whose description is too long', withPurchase({ description: 'x'.repeat(501) }), 'purchase description is not valid'],
    ['a purchase whose description is not text', withPurchase({ description: 5 }), 'purchase description is not valid'],
    ['a purchase whose balanceAfter is below its amount', withPurchase({ balanceAfter: 99 }), 'purchase balanceAfter is not valid'],
    ['a purchase whose balanceAfter is fractional', withPurchase({ balanceAfter: 100.5 }), 'purchase balanceAfter is not valid'],
    ['a purchase whose balanceAfter is text', withPurchase({ balanceAfter: '100' }), 'purchase balanceAfter is not valid'],
    ['a purchase whose heldAfter is negative', withPurchase({ heldAfter: -1 }), 'purchase heldAfter is not valid'],
    ['a purchase whose lot is not an object', withPurchase({ lot: 'tc' }), 'purchase lot is not an object'],
    ['a purchase whose lot has no id', withPurchase({ lot: { ...purchaseLot, lotId: 7 } }), 'purchase lot is not valid'],
    ['a purchase whose lot priority is out of range', withPurchase({ lot: { ...purchaseLot, priority: -1 } }), 'purchase lot is not valid'],
    ['a purchase whose lot expiry is not a time', withPurchase({ lot: { ...purchaseLot, expiresAt: 'never' } }), 'purchase lot expiresAt is not valid'],
  ])('rejects a snapshot with %s, naming what is wrong', (_name, value, reason) => {
    expectRefused(value, reason);
  });

  it('accepts a purchase whose description is exactly as long as allowed, or missing', () => {
    expect(tokenAccountSnapshot.decode(withPurchase({ description: 'x'.repeat(500) })).purchases.get(paymentId)?.description).toHaveLength(500);
    expect(tokenAccountSnapshot.decode(withPurchase({ description: null })).purchases.get(paymentId)?.description).toBeNull();
    expect(tokenAccountSnapshot.decode(withPurchase({ balanceAfter: 100 })).purchases.get(paymentId)?.balanceAfter).toBe(100);
  });
});

describe('token account: snapshot of lots, holds and disputes', () => {
  const paymentId = 'pay-1';
  const startedAt = '2026-11-24T11:00:00.000Z';
  const now = new Date('2026-11-24T12:00:00.000Z');
  const replay = (history: readonly TokenAccountEvent[]) => fold(tokenAccountDecider, tokenAccountDecider.initialState, history);
  /** The events of `commands`, each decided on the state the events before it leave, after `from`. */
  function decided(from: readonly TokenAccountEvent[], commands: readonly TokenAccountCommand[]): TokenAccountEvent[] {
    const events = [...from];
    for (const command of commands) events.push(...tokenAccountDecider.decide(command, replay(events)));
    return events;
  }
  const paid: TokenAccountEvent[] = [
    {
      type: 'PaymentInitiated',
      data: { userId, paymentId, orderId: 'pi_1', packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'stripe', occurredAt: startedAt, expiresAt: '2026-11-24T12:00:00.000Z' },
    },
    { type: 'PaymentCaptured', data: { userId, paymentId, orderId: 'pi_1', providerTransactionId: 'ch_1', occurredAt: startedAt } },
    {
      type: 'TokensPurchased',
      data: {
        userId,
        transactionId: 'buy',
        paymentId,
        amount: 100,
        description: 'Token package starter',
        balanceAfter: 100,
        occurredAt: startedAt,
        lot: { lotId: 'buy', priority: LOT_PRIORITY_DEFAULT, expiresAt: null },
        heldAfter: 0,
      },
    },
  ];
  const granted: TokenAccountEvent = {
    type: 'TokensGranted',
    data: { userId, transactionId: 'grant', amount: 10, reason: 'Welcome', lot: { lotId: 'grant', priority: 10, expiresAt: '2026-12-24T11:00:00.000Z' }, balanceAfter: 110, heldAfter: 0, occurredAt: startedAt },
  };
  const dispute = (disputeId: string, status: 'open' | 'won' | 'lost', at = now): TokenAccountCommand => ({
    type: 'RecordDispute',
    data: { userId, paymentId, disputeId, status, amount: 500, currency: 'USD', reason: 'fraudulent', transactionId: `tx-${disputeId}`, now: at },
  });
  const hold = (holdId: string, amount: number, extra: { description?: string; metadata?: Record<string, string> } = {}, at = now): TokenAccountCommand => ({
    type: 'HoldTokens',
    data: { userId, holdId, amount, description: extra.description ?? null, metadata: extra.metadata, ttlSeconds: 900, ttlSecondsMax: 86_400, transactionId: `tx-${holdId}`, now: at },
  });
  // Two lots (the paid one, and a grant spent first), a hold with metadata reserving from both, one without, a hold
  // released, an open and a won dispute.
  const events = decided(
    [...paid, granted],
    [
      hold('h1', 40, { description: 'Completion estimate', metadata: { model: 'gpt-4o' } }),
      hold('h2', 15),
      hold('h3', 5),
      { type: 'ReleaseHold', data: { userId, holdId: 'h3', transactionId: 'tx-r3', now } },
      dispute('dp_1', 'open'),
      dispute('dp_2', 'won'),
    ],
  );
  const state = replay(events);
  type Encoded = { lots: Record<string, unknown>[]; holds: Record<string, unknown>[]; endedHolds: unknown[]; disputes: Record<string, unknown>[] } & Record<string, unknown>;
  const encoded = stored(tokenAccountSnapshot.encode(state)) as Encoded;
  const [paidLot, grantLot] = encoded.lots as [Record<string, unknown>, Record<string, unknown>];
  const [openDispute, wonDispute] = encoded.disputes as [Record<string, unknown>, Record<string, unknown>];
  const [held, bare] = encoded.holds as [Record<string, unknown>, Record<string, unknown>];
  const withLots = (...lots: unknown[]) => ({ ...encoded, lots });
  const withHold = (change: Record<string, unknown>) => ({ ...encoded, holds: [{ ...held, ...change }, bare] });
  const withDisputes = (...disputes: unknown[]) => ({ ...encoded, disputes });

  it('starts from the state it claims: two lots, a hold reserving from both, one without metadata, a hold ended, an open and a won dispute', () => {
    expect({ paidLot, grantLot, held, bare, endedHolds: encoded.endedHolds, disputes: encoded.disputes.map((item) => [item.disputeId, item.status]) }).toStrictEqual({
      paidLot: expect.objectContaining({ lotId: 'buy', original: 100, remaining: 100, reserved: 45 }),
      grantLot: expect.objectContaining({ lotId: 'grant', original: 10, remaining: 10, reserved: 10 }),
      held: expect.objectContaining({ holdId: 'h1', amount: 40, metadata: { model: 'gpt-4o' }, reservations: [{ lotId: 'grant', amount: 10 }, { lotId: 'buy', amount: 30 }] }),
      bare: { holdId: 'h2', amount: 15, description: null, expiresAt: '2026-11-24T12:15:00.000Z', createdAt: now.toISOString(), reservations: [{ lotId: 'buy', amount: 15 }] },
      endedHolds: [['h3', 'released']],
      disputes: [['dp_1', 'open'], ['dp_2', 'won']],
    });
  });

  it('encodes this state as recorded for its version: a change to what evolve keeps, or to how it is stored, needs a new VERSION', () => {
    // A snapshot is trusted by its version, its checksum, the id of the event at its revision and the
    // totals that event records (ADR 0005, ADR 0029 addendum of 7 December 2026): not by its maps of
    // purchases, lots and holds. Code that folds or stores them otherwise under the same version would
    // trust a snapshot the older code wrote. The encoding of this state, as each version was released:
    // on a change, bump VERSION in token-account.snapshot.ts and add its line here; never edit a line.
    // A second state lives longer: usage, a settled hold, adjustments both ways, a grant spent in part
    // then voided, one expired, a second purchase whose refund is held back, and a lost dispute of the
    // first purchase, partly spent, leaving a shortfall.
    const later = (minutes: number) => new Date(now.getTime() + minutes * 60_000);
    const lived = replay(
      decided(
        [...paid, granted],
        [
          { type: 'UseTokens', data: { userId, amount: 15, description: 'Chat', transactionId: 'use-1', now: later(1) } },
          hold('h9', 20, {}, later(2)),
          { type: 'SettleHold', data: { userId, holdId: 'h9', amount: 12, description: null, transactionId: 'settle-9', now: later(3) } },
          { type: 'AdjustTokens', data: { userId, amount: 7, reason: 'Goodwill', transactionId: 'adj-1', now: later(4) } },
          { type: 'AdjustTokens', data: { userId, amount: -3, reason: 'Correction', transactionId: 'adj-2', now: later(5) } },
          { type: 'GrantTokens', data: { userId, amount: 20, reason: 'Promo', priority: 5, expiresAt: later(24 * 60), transactionId: 'g2', now: later(6) } },
          { type: 'UseTokens', data: { userId, amount: 2, description: null, transactionId: 'use-2', now: later(7) } },
          { type: 'VoidGrant', data: { userId, lotId: 'g2', reason: 'Abuse', transactionId: 'void-2', now: later(8) } },
          { type: 'GrantTokens', data: { userId, amount: 5, reason: 'Trial', priority: 5, expiresAt: later(60), transactionId: 'g3', now: later(9) } },
          { type: 'ExpireCredits', data: { userId, transactionId: 'expire-1', now: later(120) } },
          { type: 'InitiatePayment', data: { userId, paymentId: 'pay-2', orderId: 'pi_2', packageId: 'starter', tokens: 50, amount: 250, currency: 'USD', provider: 'stripe', now: later(121), expiresAt: later(181), pendingPaymentsMax: 5 } },
          { type: 'CapturePayment', data: { userId, paymentId: 'pay-2', outcome: { status: 'captured', providerTransactionId: 'ch_2' }, transactionId: 'buy-2', now: later(122) } },
          { type: 'RequestRefund', data: { userId, paymentId: 'pay-2', transactionId: 'refund-2', now: later(123) } },
          dispute('dp_9', 'lost', later(124)),
        ],
      ),
    );
    expect({ shortfall: lived.shortfall > 0, reservedForRefunds: lived.reservedForRefunds > 0, lots: lived.lots.size }).toEqual({ shortfall: true, reservedForRefunds: true, lots: expect.any(Number) });
    const sha256 = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('hex');
    const released: Readonly<Record<number, readonly [string, string]>> = { 8: ['c89d3eab3b49aad25ef8d356b028340affc3d95639090f349479c5a4a378ffd8', '9a07b3497e4904047a91e88ea985738b8a3e2dcdc2c3156f7331dc08bd85ec54'] };
    const { version } = tokenAccountSnapshot;
    expect({ version, sha256: [sha256(encoded), sha256(stored(tokenAccountSnapshot.encode(lived)))] }).toEqual({ version, sha256: released[version] });
  });

  it('stores lots and holds as before: the expiry instants the state derives from expiresAt are not stored', () => {
    expect({ buy: state.lots.get('buy')?.expiresAtMs, grant: state.lots.get('grant')?.expiresAtMs, h2: state.holds.get('h2')?.expiresAtMs }).toEqual({
      buy: Number.POSITIVE_INFINITY,
      grant: Date.parse('2026-12-24T11:00:00.000Z'),
      h2: Date.parse('2026-11-24T12:15:00.000Z'),
    });
    expect([...encoded.lots, ...encoded.holds].filter((item) => 'expiresAtMs' in item)).toEqual([]);
  });

  it('decodes to exactly the replayed state, no member added or dropped', () => {
    expect(plainState(tokenAccountSnapshot.decode(encoded))).toStrictEqual(plainState(state));
    // Purchases written before lots (no lot) or before holds (no heldAfter) keep exactly the members they had.
    const before = replay([
      { type: 'TokensPurchased', data: { userId, transactionId: 't1', paymentId: 'old-1', amount: 5, description: null, balanceAfter: 5, occurredAt: startedAt } },
      { type: 'TokensPurchased', data: { userId, transactionId: 't2', paymentId: 'old-2', amount: 5, description: null, balanceAfter: 10, occurredAt: startedAt, heldAfter: 0 } },
      { type: 'TokensPurchased', data: { userId, transactionId: 't3', paymentId: 'old-3', amount: 5, description: null, balanceAfter: 15, occurredAt: startedAt, lot: { lotId: 't3', priority: 100, expiresAt: null } } },
    ]);
    expect(plainState(tokenAccountSnapshot.decode(stored(tokenAccountSnapshot.encode(before))))).toStrictEqual(plainState(before));
  });

  it.each<[string, unknown]>([
    ['a shortfall of BALANCE_MAX (all of a lost payment of the largest size, spent)', { ...encoded, shortfall: BALANCE_MAX }],
    ['a hold whose description is exactly as long as allowed', withHold({ description: 'x'.repeat(DESCRIPTION_LENGTH_MAX) })],
    ['a hold without metadata', withHold({ metadata: undefined })],
  ])('accepts a snapshot with %s', (_name, value) => {
    expect(() => tokenAccountSnapshot.decode(value)).not.toThrow();
  });

  it.each<[string, unknown, string]>([
    ['a held total above the balance', { ...encoded, held: 111 }, 'held is not a valid held total'],
    ['a held total as text', { ...encoded, held: '55' }, 'held is not a valid held total'],
    ['a lotsCreated below 0', { ...encoded, lotsCreated: -1 }, 'lotsCreated is not a count'],
    ['lots that are not a list', { ...encoded, lots: {} }, 'a collection is not a list'],
    ['holds that are not a list', { ...encoded, holds: null }, 'a collection is not a list'],
    ['ended holds that are not a list', { ...encoded, endedHolds: 'h3' }, 'a collection is not a list'],
    ['a shortfall above BALANCE_MAX', { ...encoded, shortfall: BALANCE_MAX + 1 }, 'shortfall is not a count'],
    ['disputes that are not a list', { ...encoded, disputes: {} }, 'disputes is not a list'],
    ['voided grants that are not a list', { ...encoded, voidedGrants: 'promo' }, 'voidedGrants is not a list of distinct lot ids within its bound'],
    ['a voided grant whose id is not text', { ...encoded, voidedGrants: [1] }, 'voidedGrants is not a list of distinct lot ids within its bound'],
    ['the same voided grant twice', { ...encoded, voidedGrants: ['promo', 'promo'] }, 'voidedGrants is not a list of distinct lot ids within its bound'],
    ['more voided grants than are remembered', { ...encoded, voidedGrants: Array.from({ length: VOIDED_GRANTS_REMEMBERED_MAX + 1 }, (_, index) => `promo-${index}`) }, 'voidedGrants is not a list of distinct lot ids within its bound'],
    // The totals: each damage leaves every lot and hold valid on its own.
    ['a balance more than its lots hold', { ...encoded, balance: 111 }, 'lots do not add up to the balance'],
    ['a balance of BALANCE_MAX its lots do not hold', { ...encoded, balance: BALANCE_MAX }, 'lots do not add up to the balance'],
    ['a held total its holds do not add up to', { ...encoded, held: 54 }, 'holds do not add up to the held total'],
    ['a lot reserving less than the holds set aside', withLots({ ...paidLot, reserved: 44 }, grantLot), 'reservations do not add up to the held total and pending refunds'],
    ['the same lot twice', withLots(paidLot, paidLot, grantLot), 'buy appears twice'],
    ['the same hold twice', { ...encoded, holds: [held, held] }, 'h1 appears twice'],
    ['the same dispute twice', withDisputes(openDispute, openDispute), 'dp_1 appears twice'],
    // Lots.
    ['a lot that is not an object', withLots('buy', grantLot), 'lot is not an object'],
    ['a lot whose id is not text', withLots({ ...paidLot, lotId: 1 }, grantLot), 'lot id or priority is not valid'],
    ['a lot whose priority is out of range', withLots({ ...paidLot, priority: -1 }, grantLot), 'lot id or priority is not valid'],
    ['a lot whose expiry is not a time', withLots({ ...paidLot, expiresAt: 'never' }, grantLot), 'lot expiresAt is not a time'],
    ['a lot of an unknown source', withLots({ ...paidLot, source: 'gift' }, grantLot), 'lot source is not valid'],
    ['a lot whose source is not text', withLots({ ...paidLot, source: 1 }, grantLot), 'lot source is not valid'],
    ['a lot whose paymentId is not text', withLots({ ...paidLot, paymentId: 1 }, grantLot), 'lot paymentId is not valid'],
    ['a lot whose sequence is not a count', withLots({ ...paidLot, sequence: 0.5 }, grantLot), 'lot amounts are not counts'],
    ['a lot with more left than it was created with', withLots({ ...paidLot, original: 99 }, grantLot), 'lot amounts do not fit'],
    // The paid lot's reservation moved to the grant lot: the totals still add up, the grant lot reserves 55 of its 10.
    ['a lot reserving more than it has left', withLots({ ...paidLot, reserved: 0 }, { ...grantLot, reserved: 55 }), 'lot amounts do not fit'],
    ['a lot with nothing left and nothing reserved (replay drops it)', withLots(paidLot, grantLot, { ...grantLot, lotId: 'spent', remaining: 0, reserved: 0 }), 'lot amounts do not fit'],
    // Holds.
    ['a hold that is not an object', { ...encoded, holds: ['h1'] }, 'hold is not an object'],
    ['a hold of no tokens', withHold({ amount: 0 }), 'hold id or amount is not valid'],
    ['a hold whose id is not text', withHold({ holdId: null }), 'hold id or amount is not valid'],
    ['a hold whose description is too long', withHold({ description: 'x'.repeat(DESCRIPTION_LENGTH_MAX + 1) }), 'hold description is not valid'],
    ['a hold whose description is not text', withHold({ description: 5 }), 'hold description is not valid'],
    ['a hold with nested metadata', withHold({ metadata: { nested: { a: 1 } } }), 'hold metadata is not valid'],
    ['a hold whose expiry is not a time', withHold({ expiresAt: 'later' }), 'hold times are not times'],
    ['a hold whose creation is not a time', withHold({ createdAt: null }), 'hold times are not times'],
    ['a hold whose reservations are not a list', withHold({ reservations: {} }), 'draws are not a list'],
    ['a hold with a reservation that is not an object', withHold({ reservations: ['grant'] }), 'draw is not an object'],
    ['a hold with a reservation of no tokens', withHold({ reservations: [{ lotId: 'grant', amount: 0 }, { lotId: 'buy', amount: 40 }] }), 'a draw is not valid'],
    ['a hold with a reservation from a lot id that is not text', withHold({ reservations: [{ lotId: 3, amount: 10 }, { lotId: 'buy', amount: 30 }] }), 'a draw is not valid'],
    ['a hold whose reservations do not add up to it', withHold({ reservations: [{ lotId: 'grant', amount: 10 }, { lotId: 'buy', amount: 29 }] }), 'hold reservations do not add up to its amount'],
    // Ended holds.
    ['an ended hold of an unknown end', { ...encoded, endedHolds: [['h3', 'cancelled']] }, 'an ended hold is not valid'],
    ['an ended hold with a third member', { ...encoded, endedHolds: [['h3', 'released', 'settled']] }, 'an ended hold is not valid'],
    ['an ended hold whose id is not text', { ...encoded, endedHolds: [[2, 'released']] }, 'an ended hold is not valid'],
    ['an ended hold that is not a pair', { ...encoded, endedHolds: [{ h3: 'released' }] }, 'an ended hold is not valid'],
    // Disputes.
    ['a dispute that is not an object', withDisputes('dp_1', wonDispute), 'dispute is not an object'],
    ['a dispute whose id is not text', withDisputes({ ...openDispute, disputeId: 1 }, wonDispute), 'dispute ids are not valid'],
    ['a dispute of a payment the snapshot does not know', withDisputes({ ...openDispute, paymentId: 'pay-9' }, wonDispute), 'dispute ids are not valid'],
    ['a dispute of an unknown status', withDisputes({ ...openDispute, status: 'pending' }, wonDispute), 'dispute status is not a status'],
    ['an open dispute with a close time', withDisputes({ ...openDispute, closedAt: now.toISOString() }, wonDispute), 'dispute times are not valid'],
    ['a closed dispute without a close time', withDisputes(openDispute, { ...wonDispute, closedAt: null }), 'dispute times are not valid'],
    ['a dispute whose opening is not a time', withDisputes({ ...openDispute, openedAt: 'today' }, wonDispute), 'dispute times are not valid'],
    ['a dispute whose close is not a time', withDisputes(openDispute, { ...wonDispute, closedAt: 'today' }), 'dispute times are not valid'],
    ['a dispute without what it owed (a version 6 entry)', withDisputes(openDispute, { ...wonDispute, tokens: undefined }), 'dispute tokens are not a count a lost dispute owed'],
    ['a dispute that owed a fraction', withDisputes(openDispute, { ...wonDispute, tokens: 0.5 }), 'dispute tokens are not a count a lost dispute owed'],
    ['an open dispute that owed tokens', withDisputes({ ...openDispute, tokens: 1 }, wonDispute), 'dispute tokens are not a count a lost dispute owed'],
    ['a won dispute that owed tokens', withDisputes(openDispute, { ...wonDispute, tokens: 1 }), 'dispute tokens are not a count a lost dispute owed'],
  ])('rejects a snapshot with %s, naming what is wrong', (_name, value, reason) => {
    expectRefused(value, reason);
  });

  // A lost dispute that owes 70 (70 of the 100 tokens were spent), then a grant that covers 20 of it.
  const owing = decided(paid, [{ type: 'UseTokens', data: { userId, amount: 70, description: null, transactionId: 'use', now } }, dispute('dp_1', 'lost')]);
  const covered = decided(owing, [{ type: 'GrantTokens', data: { userId, amount: 20, reason: 'Goodwill', priority: 10, expiresAt: null, transactionId: 'grant-2', now } }]);
  const upTo = (history: readonly TokenAccountEvent[], type: TokenAccountEvent['type']) => history.slice(0, history.findIndex((event) => event.type === type) + 1);
  const setDispute =
    (disputeId: string, status: DisputeStatus, closedAt: string | null) =>
    (state: TokenAccountState): TokenAccountState => ({ ...state, disputes: state.disputes.map((item) => (item.disputeId === disputeId ? { ...item, status, closedAt } : item)) });

  it.each<[string, string, readonly TokenAccountEvent[], (state: TokenAccountState) => TokenAccountState]>([
    ['the shortfall', 'the close of a lost dispute', upTo(owing, 'PaymentDisputeClosed'), (state) => ({ ...state, shortfall: state.shortfall + 1 })],
    ['the shortfall', 'a cover of the shortfall', upTo(covered, 'ShortfallCovered'), (state) => ({ ...state, shortfall: state.shortfall - 1 })],
    ['the status of the dispute', 'the close of a lost dispute', upTo(owing, 'PaymentDisputeClosed'), setDispute('dp_1', 'open', null)],
    ['the status of the dispute', 'the close of a won dispute', upTo(events, 'PaymentDisputeClosed'), setDispute('dp_2', 'lost', now.toISOString())],
    ['the status of the dispute', 'the opening of a dispute', upTo(events, 'PaymentDisputeOpened'), setDispute('dp_1', 'won', now.toISOString())],
    [
      'what the lost dispute owed',
      'the close of a lost dispute',
      upTo(owing, 'PaymentDisputeClosed'),
      (state) => ({ ...state, disputes: state.disputes.map((item) => (item.disputeId === 'dp_1' ? { ...item, tokens: item.tokens - 1 } : item)) }),
    ],
    ['the dispute itself (unknown)', 'the opening of a dispute', upTo(events, 'PaymentDisputeOpened'), (state) => ({ ...state, disputes: state.disputes.clear() })],
    ['the held total', 'a hold', upTo(events, 'TokensHeld'), (state) => ({ ...state, held: state.held - 1 })],
    ['the held total', 'the release of a hold', upTo(events, 'HoldReleased'), (state) => ({ ...state, held: state.held + 1 })],
  ])('disagrees, by %s alone, with %s it claims to follow', (_member, _event, history, damage) => {
    const last = history.at(-1) as TokenAccountEvent;
    expect([tokenAccountSnapshot.agreesWith(replay(history), last), tokenAccountSnapshot.agreesWith(damage(replay(history)), last)]).toEqual([true, false]);
  });
});
