import { fold } from '../decider.js';
import { LedgerInvariantViolation } from '../ledger.errors.js';
import { GRANT_PRIORITY_DEFAULT, LIVE_LOTS_MAX, LOT_PRIORITY_DEFAULT, LOT_PRIORITY_MAX, LOT_PRIORITY_MIN, REASON_LENGTH_MAX, VOIDED_GRANTS_REMEMBERED_MAX } from '../ledger.limits.js';
import { deciderSpecification } from '../testing/decider-specification.js';
import type { ExpireCredits, GrantTokens, HoldTokens, SettleHold, VoidGrant } from './hold.commands.js';
import { OPENING_LOT_ID, compareDrawOrder, derivedTransactionId, drawDown, expiryInstant, type Lot } from './lot.state.js';
import type { CapturePayment, InitiatePayment, RefundPayment, RequestRefund } from './payment.commands.js';
import type { AddTokens, TokenAccountCommand, UseTokens } from './token-account.commands.js';
import { tokenAccountDecider } from './token-account.decider.js';
import { voidOfLotWithoutTokens } from './hold.decide.js';
import { captureDecision } from './payment.decide.js';
import type { TokenAccountEvent } from './token-account.events.js';
import { tokenAccountSnapshot } from './token-account.snapshot.js';

const userId = '11111111-1111-4111-8111-111111111111';
const now = new Date('2026-11-24T12:00:00.000Z');
const inDays = (days: number) => new Date(now.getTime() + days * 86_400_000);
const spec = deciderSpecification(tokenAccountDecider);

const buy = (transactionId: string, amount: number, at = now): AddTokens => ({
  type: 'AddTokens',
  data: { userId, paymentId: `pay-${transactionId}`, amount, description: null, transactionId, now: at },
});
const grant = (transactionId: string, amount: number, overrides: Partial<GrantTokens['data']> = {}): GrantTokens => ({
  type: 'GrantTokens',
  data: { userId, amount, reason: 'Welcome bonus', priority: GRANT_PRIORITY_DEFAULT, expiresAt: inDays(30), transactionId, now, ...overrides },
});
const use = (amount: number, at = now, transactionId = 'tx-use'): UseTokens => ({ type: 'UseTokens', data: { userId, amount, description: null, transactionId, now: at } });
const expireCredits = (at: Date): ExpireCredits => ({ type: 'ExpireCredits', data: { userId, transactionId: 'tx-job', now: at } });
const voidGrant = (lotId: string, overrides: Partial<VoidGrant['data']> = {}): VoidGrant => ({
  type: 'VoidGrant',
  data: { userId, lotId, reason: 'Granted by mistake', transactionId: 'tx-void', now, ...overrides },
});
const hold = (holdId: string, amount: number, ttlSeconds = 3600): HoldTokens => ({
  type: 'HoldTokens',
  data: { userId, holdId, amount, description: null, ttlSeconds, ttlSecondsMax: 86_400 * 60, transactionId: `tx-${holdId}`, now },
});

function history(commands: readonly TokenAccountCommand[], from: readonly TokenAccountEvent[] = []): TokenAccountEvent[] {
  // The state is folded along, one event at a time (as fold would from the start), so a long history
  // costs one evolve per event rather than a replay per command.
  const events = [...from];
  let state = fold(tokenAccountDecider, tokenAccountDecider.initialState, events);
  for (const command of commands) {
    const decided = tokenAccountDecider.decide(command, state);
    events.push(...decided);
    state = fold(tokenAccountDecider, state, decided);
  }
  return events;
}
const stateOf = (events: readonly TokenAccountEvent[]) => fold(tokenAccountDecider, tokenAccountDecider.initialState, events);
const drawsOf = (events: readonly TokenAccountEvent[]) => events.flatMap((event) => ('draws' in event.data && event.data.draws !== undefined ? [event.data.draws] : []));

describe('lots: draw-down order', () => {
  const lot = (lotId: string, priority: number, expiresAt: string | null, sequence: number): Lot => ({
    lotId,
    priority,
    expiresAt,
    sequence,
    source: 'purchase',
    paymentId: null,
    original: 10,
    remaining: 10,
    reserved: 0,
    expiresAtMs: expiryInstant(expiresAt, 'lot', lotId),
  });

  it('spends lower priorities first, then the earliest expiry (none last), then the oldest', () => {
    const lots = [
      lot('paid-old', 100, null, 0),
      lot('paid-expiring-late', 100, '2027-01-01T00:00:00.000Z', 1),
      lot('promo', 10, '2026-12-24T00:00:00.000Z', 2),
      lot('paid-expiring-soon', 100, '2026-12-01T00:00:00.000Z', 3),
      lot('paid-new', 100, null, 4),
    ];
    expect([...lots].sort(compareDrawOrder).map((each) => each.lotId)).toEqual(['promo', 'paid-expiring-soon', 'paid-expiring-late', 'paid-old', 'paid-new']);
    expect(drawDown(lots, 25, now)).toEqual([
      { lotId: 'promo', amount: 10 },
      { lotId: 'paid-expiring-soon', amount: 10 },
      { lotId: 'paid-expiring-late', amount: 5 },
    ]);
    expect(drawDown(lots, 51, now)).toBeNull();
  });

  it('spends the older of two lots alike first, whatever order they are given in', () => {
    const order = (lots: readonly Lot[]) => [...lots].sort(compareDrawOrder).map((each) => each.lotId);
    expect(order([lot('newer', 100, null, 7), lot('older', 100, null, 3)])).toEqual(['older', 'newer']);
    expect(order([lot('newer', 100, '2027-01-01T00:00:00.000Z', 7), lot('older', 100, '2027-01-01T00:00:00.000Z', 3)])).toEqual(['older', 'newer']);
    expect(drawDown([lot('newer', 100, null, 7), lot('older', 100, null, 3)], 15, now)).toEqual([
      { lotId: 'older', amount: 10 },
      { lotId: 'newer', amount: 5 },
    ]);
  });

  it('takes a debit the first lot covers from that lot alone, among many lots in any order; more from the next ones in order', () => {
    const day = (index: number) => `2027-01-${String((index % 28) + 1).padStart(2, '0')}T00:00:00.000Z`;
    // Priorities 94 to 100; a third never expire. The first in order: priority 94 (lots 6, 13, 20, 27, 34), earliest expiry: lot 34 (7 January), then 13 (14th), 20 (21st), then 27 and 6 (no expiry), older first.
    const lots = Array.from({ length: 40 }, (_, index) => lot(`lot-${index}`, 100 - (index % 7), index % 3 === 0 ? null : day(index), 40 - index));
    expect(drawDown(lots, 10, now)).toEqual([{ lotId: 'lot-34', amount: 10 }]);
    expect(drawDown(lots, 3, now)).toEqual([{ lotId: 'lot-34', amount: 3 }]);
    expect(drawDown(lots, 45, now)).toEqual([
      { lotId: 'lot-34', amount: 10 },
      { lotId: 'lot-13', amount: 10 },
      { lotId: 'lot-20', amount: 10 },
      { lotId: 'lot-27', amount: 10 },
      { lotId: 'lot-6', amount: 5 },
    ]);
    expect(drawDown(lots, 0, now)).toEqual([]);
    expect(drawDown(lots, 401, now)).toBeNull();
    expect(drawDown([], 1, now)).toBeNull();
  });

  it('spends lots alike oldest first past 8 lots, where the state no longer iterates them in creation order', () => {
    const purchases = Array.from({ length: 12 }, (_, index) => buy(`paid-${index}`, 1));
    const state = stateOf(history(purchases));
    expect([...state.lots.keys()]).not.toEqual(purchases.map((each) => each.data.transactionId));
    expect(drawsOf(history([use(12)], history(purchases)))).toEqual([purchases.map((each) => ({ lotId: each.data.transactionId, amount: 1 }))]);
  });

  it('spends a promotional grant before paid credit and records the draws of each debit', () => {
    const events = history([buy('paid', 100), grant('promo', 20), use(30)]);
    expect(drawsOf(events)).toEqual([
      [
        { lotId: 'promo', amount: 20 },
        { lotId: 'paid', amount: 10 },
      ],
    ]);
    const state = stateOf(events);
    expect([...state.lots.keys()]).toEqual(['paid']);
    expect(state.lots.get('paid')?.remaining).toBe(90);
  });
});

describe('lots: the ids of events a command decides beside its own', () => {
  it('derives a UUID v4-shaped id from the transaction id of the command and the purpose, the same on every run and version', () => {
    // The ids are written in events and the transactions read model: a change of the derivation is a change of stored data.
    expect(derivedTransactionId('tx-job', 'shortfall-covered')).toBe('c83f8992-444a-4a86-b4fc-34fb9d241abb');
    expect(derivedTransactionId('tx-use', 'shortfall-covered')).toBe('9d20b4e0-d005-4d84-a735-2ae72f463d1b');
    expect(derivedTransactionId('tx-job', 'lot-expired:paid:before')).toBe('066b11c6-6f79-4977-b7d4-89a913f9fb3b');
    expect(derivedTransactionId('tx-job', 'lot-expired:paid:after')).toBe('0a903457-b95c-4305-9814-0c36e1cf4929');
  });

  it('never derives one id for two commands or two purposes', () => {
    const ids = ['tx-1', 'tx-2'].flatMap((transactionId) => ['lot-expired:a:before', 'lot-expired:a:after', 'lot-expired:b:before', 'shortfall-covered'].map((purpose) => derivedTransactionId(transactionId, purpose)));
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

describe('lots: GrantTokens', () => {
  it('credits a lot with its terms as an event with the reason', () => {
    spec
      .given([])
      .when(grant('promo', 20))
      .then([
        {
          type: 'TokensGranted',
          data: {
            userId,
            transactionId: 'promo',
            amount: 20,
            reason: 'Welcome bonus',
            lot: { lotId: 'promo', priority: GRANT_PRIORITY_DEFAULT, expiresAt: inDays(30).toISOString() },
            balanceAfter: 20,
            heldAfter: 0,
            occurredAt: now.toISOString(),
          },
        },
      ]);
  });

  it.each([-1, 1.5, LOT_PRIORITY_MAX + 1])('refuses the priority %p', (priority) => {
    spec.given([]).when(grant('promo', 20, { priority })).thenThrows('LOT_PRIORITY_OUT_OF_RANGE');
  });

  it('refuses an expiry at or before now, and an invalid time', () => {
    spec.given([]).when(grant('promo', 20, { expiresAt: now })).thenThrows('LOT_EXPIRY_OUT_OF_RANGE');
    spec.given([]).when(grant('promo', 20, { expiresAt: new Date('nonsense') })).thenThrows('LOT_EXPIRY_OUT_OF_RANGE', { expiresAt: null });
    spec.given([]).when(grant('promo', 20, { expiresAt: null, priority: 0 })).then([expect.objectContaining({ type: 'TokensGranted' }) as TokenAccountEvent]);
  });

  it('refuses a blank or too long reason and a zero amount', () => {
    spec.given([]).when(grant('promo', 20, { reason: ' ' })).thenThrows('REASON_REQUIRED');
    spec.given([]).when(grant('promo', 20, { reason: 'r'.repeat(REASON_LENGTH_MAX + 1) })).thenThrows('REASON_TOO_LONG');
    spec.given([]).when(grant('promo', 0)).thenThrows('AMOUNT_OUT_OF_RANGE');
  });

  it('tells the client why a grant is refused (the problem detail)', () => {
    spec
      .given([])
      .when(grant('promo', 20, { priority: -1 }))
      .thenThrows('LOT_PRIORITY_OUT_OF_RANGE', { priority: -1, min: LOT_PRIORITY_MIN, max: LOT_PRIORITY_MAX }, `priority must be an integer from ${LOT_PRIORITY_MIN} to ${LOT_PRIORITY_MAX}`);
    spec
      .given([])
      .when(grant('promo', 20, { expiresAt: now }))
      .thenThrows('LOT_EXPIRY_OUT_OF_RANGE', { expiresAt: now.toISOString(), now: now.toISOString() }, 'expiresAt must be a valid time after now');
  });

  it(`refuses a credit once the account has ${LIVE_LOTS_MAX} lots with tokens left`, () => {
    const full = history(Array.from({ length: LIVE_LOTS_MAX }, (_, index) => buy(`lot-${index}`, 1)));
    spec
      .given(full)
      .when(grant('promo', 1))
      .thenThrows('LOT_LIMIT_REACHED', { live: LIVE_LOTS_MAX, max: LIVE_LOTS_MAX }, `the account has ${LIVE_LOTS_MAX} credit lots with tokens left, the most it may have`);
    spec.given(full).when(buy('one-more', 1)).thenThrows('LOT_LIMIT_REACHED');
    spec.given(full).when({ type: 'AdjustTokens', data: { userId, amount: 1, reason: 'Goodwill', transactionId: 'adj', now } }).thenThrows('LOT_LIMIT_REACHED');
    // A spent lot leaves, and makes room.
    const [credit] = tokenAccountDecider.decide(grant('promo', 1), stateOf(history([use(1)], full)));
    expect(credit?.type).toBe('TokensGranted');
  });

  it(`captures a payment when the ${LIVE_LOTS_MAX} lots are reached only by lots expired at the capture's instant, expiring them with it`, () => {
    const initiate: InitiatePayment = {
      type: 'InitiatePayment',
      data: { userId, paymentId: 'pay-late', orderId: 'O-late', packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'mock', now, expiresAt: inDays(2), pendingPaymentsMax: 10 },
    };
    const full = history([initiate, grant('short', 1, { expiresAt: inDays(1) }), ...Array.from({ length: LIVE_LOTS_MAX - 1 }, (_, index) => buy(`lot-${index}`, 1))]);
    const capture = (at: Date): CapturePayment => ({ type: 'CapturePayment', data: { userId, paymentId: 'pay-late', outcome: { status: 'captured', providerTransactionId: 'C-late' }, transactionId: 'lot-late', now: at } });
    expect(() => captureDecision(stateOf(full), 'pay-late', new Date(inDays(1).getTime() - 1))).toThrow(expect.objectContaining({ code: 'LOT_LIMIT_REACHED' }));
    expect(captureDecision(stateOf(full), 'pay-late', inDays(1))).toBe('capture');
    const decided = tokenAccountDecider.decide(capture(inDays(1)), stateOf(full));
    expect(decided.map((event) => event.type)).toEqual(['LotExpired', 'PaymentCaptured', 'TokensPurchased']);
    expect(decided[0]).toMatchObject({ data: { lotId: 'short', amount: 1 } });
  });
});

describe('lots: expiry', () => {
  const expiry = inDays(30);
  const justBefore = new Date(expiry.getTime() - 1);

  it('spends a lot up to one millisecond before its expiry, and not at it', () => {
    const events = history([buy('paid', 10), grant('promo', 20)]);
    expect(drawsOf(tokenAccountDecider.decide(use(25, justBefore), stateOf(events)))).toEqual([
      [
        { lotId: 'promo', amount: 20 },
        { lotId: 'paid', amount: 5 },
      ],
    ]);
    spec.given(events).when(use(25, expiry)).thenThrows('INSUFFICIENT_BALANCE', { balance: 10, requested: 25 });
  });

  it('appends the expiry of the remainder before a usage at the expiry, and the balance drops by it', () => {
    const events = history([buy('paid', 10), grant('promo', 20), use(5)]);
    spec
      .given(events)
      .when(use(10, expiry))
      .then([
        {
          type: 'LotExpired',
          data: {
            userId,
            transactionId: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/),
            lotId: 'promo',
            amount: 15,
            expiresAt: expiry.toISOString(),
            draws: [{ lotId: 'promo', amount: 15 }],
            balanceAfter: 10,
            heldAfter: 0,
            occurredAt: expiry.toISOString(),
          },
        },
        {
          type: 'TokensUsed',
          data: { userId, transactionId: 'tx-use', amount: 10, description: null, balanceAfter: 0, occurredAt: expiry.toISOString(), draws: [{ lotId: 'paid', amount: 10 }], heldAfter: 0 },
        },
      ]);
  });

  it('is recorded by ExpireCredits from the expiry on, once', () => {
    const events = history([grant('promo', 20)]);
    spec.given(events).when(expireCredits(justBefore)).thenNothing();
    const expired = history([expireCredits(expiry)], events);
    expect(expired.slice(1)).toEqual([expect.objectContaining({ type: 'LotExpired', data: expect.objectContaining({ amount: 20, balanceAfter: 0 }) as unknown })]);
    spec.given(expired).when(expireCredits(inDays(40))).thenNothing();
    expect(stateOf(expired).lots.size).toBe(0);
  });

  it('expires the lots due together in draw-down order, whatever order they were credited in', () => {
    const events = history([grant('late', 20, { expiresAt: inDays(20) }), grant('early', 10, { expiresAt: inDays(10) })]);
    const expired = tokenAccountDecider.decide(expireCredits(inDays(30)), stateOf(events));
    expect(expired.map((event) => (event.type === 'LotExpired' ? [event.data.lotId, event.data.balanceAfter] : event.type))).toEqual([
      ['early', 20],
      ['late', 0],
    ]);
    // Each expiry is a ledger transaction of its own.
    expect(new Set(expired.map((event) => (event.type === 'LotExpired' ? event.data.transactionId : event.type))).size).toBe(2);
  });

  it('leaves the part a hold set aside with the hold; the rest expires, and what the hold gives back expires after it', () => {
    const events = history([grant('promo', 20, { expiresAt: inDays(10) }), hold('h', 15, 30 * 86_400), expireCredits(inDays(10))]);
    expect(events[2]).toMatchObject({ type: 'LotExpired', data: { amount: 5, balanceAfter: 15, heldAfter: 15 } });
    const settle: SettleHold = { type: 'SettleHold', data: { userId, holdId: 'h', amount: 10, description: null, transactionId: 'tx-settle', now: inDays(11) } };
    const settled = tokenAccountDecider.decide(settle, stateOf(events));
    expect(settled.map((event) => event.type)).toEqual(['HoldSettled', 'LotExpired']);
    expect(settled[0]).toMatchObject({ data: { draws: [{ lotId: 'promo', amount: 10 }], balanceAfter: 5 } });
    expect(settled[1]).toMatchObject({ data: { amount: 5, balanceAfter: 0, heldAfter: 0 } });
    expect(stateOf([...events, ...settled]).lots.size).toBe(0);
  });
});

describe('lots: VoidGrant', () => {
  it('takes back what is left of a grant with the reason', () => {
    const events = history([buy('paid', 100), grant('promo', 20), use(5)]);
    spec
      .given(events)
      .when(voidGrant('promo'))
      .then([
        {
          type: 'GrantVoided',
          data: {
            userId,
            transactionId: 'tx-void',
            lotId: 'promo',
            amount: 15,
            reason: 'Granted by mistake',
            draws: [{ lotId: 'promo', amount: 15 }],
            balanceAfter: 100,
            heldAfter: 0,
            occurredAt: now.toISOString(),
          },
        },
      ]);
  });

  it('refuses a lot that is not a grant, one with nothing left, one held, and a blank reason, and tells the client why', () => {
    const events = history([buy('paid', 100), grant('promo', 20)]);
    spec.given(events).when(voidGrant('paid')).thenThrows('LOT_NOT_A_GRANT', { lotId: 'paid', source: 'purchase' }, 'lot paid is a purchase lot; only grants can be voided');
    spec.given(history([use(20)], events)).when(voidGrant('promo')).thenThrows('LOT_NOT_FOUND', { lotId: 'promo' }, 'lot promo has no tokens left on this account');
    spec.given(history([hold('h', 5)], events)).when(voidGrant('promo')).thenThrows('LOT_HELD', { lotId: 'promo', reserved: 5 }, '5 tokens of lot promo are held');
    spec.given(events).when(voidGrant('promo', { reason: '' })).thenThrows('REASON_REQUIRED');
  });

  it('answers a second void of a grant with LOT_NOT_ACTIVE and the lot status, not LOT_NOT_FOUND, and decides nothing', () => {
    const voided = history([buy('paid', 100), grant('promo', 20), use(5), voidGrant('promo')]);
    spec.given(voided).when(voidGrant('promo', { transactionId: 'tx-void-again' })).thenThrows('LOT_NOT_ACTIVE', { lotId: 'promo', lotStatus: 'voided' }, 'lot promo is voided');
    // Spent whole, a grant leaves no trace in the state: the decider cannot tell it from an id never
    // granted, and the handler asks the account's lot list (voidOfLotWithoutTokens, below).
    spec.given(history([buy('paid', 100), grant('spent', 20), use(20)])).when(voidGrant('spent')).thenThrows('LOT_NOT_FOUND', { lotId: 'spent' });
    spec.given(voided).when(voidGrant('never-granted')).thenThrows('LOT_NOT_FOUND', { lotId: 'never-granted' });
  });

  it('answers the void of a grant past its expiry that a hold still holds part of with LOT_NOT_ACTIVE expired, not LOT_HELD, recorded or not', () => {
    // The hold (two days) outlives the grant (one day): at the grant's expiry its free part expires and the held 30 stay with the hold.
    const events = history([buy('paid', 100), grant('promo', 100, { expiresAt: inDays(1) }), hold('h', 30, 2 * 86_400)]);
    spec.given(events).when(voidGrant('promo', { now: inDays(1) })).thenThrows('LOT_NOT_ACTIVE', { lotId: 'promo', lotStatus: 'expired' }, 'lot promo is expired');
    const recorded = history([expireCredits(new Date(inDays(1).getTime() + 1))], events);
    expect(recorded.slice(events.length).map((event) => event.type)).toEqual(['LotExpired']);
    spec.given(recorded).when(voidGrant('promo', { now: inDays(1.5) })).thenThrows('LOT_NOT_ACTIVE', { lotId: 'promo', lotStatus: 'expired' });
    // A millisecond before, it is a held grant.
    spec.given(events).when(voidGrant('promo', { now: new Date(inDays(1).getTime() - 1) })).thenThrows('LOT_HELD', { lotId: 'promo', reserved: 30 });
  });

  it('answers the void of a grant past its expiry, not yet recorded, with LOT_NOT_ACTIVE expired, and of a purchase past its own with LOT_NOT_A_GRANT', () => {
    // The void's own sweep expires the lot at the command's time and a refusal appends nothing, so no
    // LotExpired is recorded and the lot list still shows the lot active: only the decider can tell.
    const events = history([buy('paid', 100), grant('promo', 20, { expiresAt: inDays(1) }), use(5)]);
    spec.given(events).when(voidGrant('promo', { now: inDays(2) })).thenThrows('LOT_NOT_ACTIVE', { lotId: 'promo', lotStatus: 'expired' }, 'lot promo is expired');
    spec.given(events).when(voidGrant('promo', { now: inDays(1) })).thenThrows('LOT_NOT_ACTIVE', { lotId: 'promo', lotStatus: 'expired' });
    const justBefore = tokenAccountDecider.decide(voidGrant('promo', { now: new Date(inDays(1).getTime() - 1) }), stateOf(events));
    expect(justBefore.map((event) => [event.type, 'amount' in event.data ? event.data.amount : null])).toEqual([['GrantVoided', 15]]);
    // A purchase whose package gives its lot a lifetime, past it.
    const perishable = history([buy('perishable', 10), grant('promo', 5)]).map((event) =>
      event.type === 'TokensPurchased' && event.data.lot !== undefined ? { ...event, data: { ...event.data, lot: { ...event.data.lot, expiresAt: inDays(1).toISOString() } } } : event,
    );
    spec.given(perishable).when(voidGrant('perishable', { now: inDays(2) })).thenThrows('LOT_NOT_A_GRANT', { lotId: 'perishable', source: 'purchase' });
  });

  it('tells from what the lot list records why a lot without tokens cannot be voided: 404 only for a lot the account never had', () => {
    const refusal = (recorded: Parameters<typeof voidOfLotWithoutTokens>[1]) => {
      const error = voidOfLotWithoutTokens('lot-1', recorded);
      return { code: error.code, details: error.details, message: error.message };
    };
    expect(refusal(undefined)).toEqual({ code: 'LOT_NOT_FOUND', details: { lotId: 'lot-1' }, message: 'this account has no lot lot-1' });
    for (const status of ['spent', 'expired', 'voided'] as const) {
      expect(refusal({ source: 'grant', status })).toEqual({ code: 'LOT_NOT_ACTIVE', details: { lotId: 'lot-1', lotStatus: status }, message: `lot lot-1 is ${status}` });
    }
    // Not a grant: that answer holds whatever the lot's state, so it comes first.
    for (const source of ['purchase', 'adjustment', 'opening'] as const) {
      for (const status of ['active', 'spent', 'expired', 'refunded'] as const) {
        expect(refusal({ source, status })).toEqual({ code: 'LOT_NOT_A_GRANT', details: { lotId: 'lot-1', source }, message: `lot lot-1 is ${source === 'purchase' ? 'a' : 'an'} ${source} lot; only grants can be voided` });
      }
    }
    // A grant the list still shows active ended after the list was written (EventStoreDB's read
    // models follow the stream): nothing says how yet.
    expect(refusal({ source: 'grant', status: 'active' })).toEqual({ code: 'LOT_NOT_FOUND', details: { lotId: 'lot-1' }, message: 'lot lot-1 has no tokens left on this account' });
  });

  it(`remembers the newest ${VOIDED_GRANTS_REMEMBERED_MAX} voided grants, through a snapshot, and forgets older ones`, () => {
    const commands = Array.from({ length: VOIDED_GRANTS_REMEMBERED_MAX + 1 }, (_, index) => [grant(`promo-${index}`, 1), voidGrant(`promo-${index}`, { transactionId: `tx-void-${index}` })]).flat();
    const events = history(commands);
    const state = stateOf(events);
    expect(state.voidedGrants).toHaveLength(VOIDED_GRANTS_REMEMBERED_MAX);
    expect([state.voidedGrants[0], state.voidedGrants.at(-1)]).toEqual(['promo-1', `promo-${VOIDED_GRANTS_REMEMBERED_MAX}`]);
    spec.given(events).when(voidGrant('promo-0')).thenThrows('LOT_NOT_FOUND', { lotId: 'promo-0' });
    spec.given(events).when(voidGrant('promo-1')).thenThrows('LOT_NOT_ACTIVE', { lotId: 'promo-1', lotStatus: 'voided' });
    const decoded = tokenAccountSnapshot.decode(JSON.parse(JSON.stringify(tokenAccountSnapshot.encode(state))));
    expect(decoded.voidedGrants).toEqual(state.voidedGrants);
    expect(() => tokenAccountDecider.decide(voidGrant('promo-1'), decoded)).toThrow(expect.objectContaining({ code: 'LOT_NOT_ACTIVE', details: { lotId: 'promo-1', lotStatus: 'voided' } }));
  });
});

describe('lots: refunds take back the purchase’s own lot', () => {
  const paymentId = 'pay-provider';
  const initiate: InitiatePayment = {
    type: 'InitiatePayment',
    data: { userId, paymentId, orderId: 'O-1', packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'mock', now, expiresAt: inDays(1), pendingPaymentsMax: 10 },
  };
  const capture = (lot?: CapturePayment['data']['lot']): CapturePayment => ({
    type: 'CapturePayment',
    data: { userId, paymentId, outcome: { status: 'captured', providerTransactionId: 'C-1' }, transactionId: 'lot-bought', now, ...(lot === undefined ? {} : { lot }) },
  });
  const refund: RefundPayment = { type: 'RefundPayment', data: { userId, paymentId, providerRefundId: 'R-1', transactionId: 'tx-refund', now } };
  const request: RequestRefund = { type: 'RequestRefund', data: { userId, paymentId, transactionId: 'tx-refund-request', now } };

  it('credits a capture to a lot on the package terms, which remembers the payment it came from', () => {
    const events = history([initiate, capture({ priority: 50, expiresInDays: 365 })]);
    expect(events[2]).toMatchObject({ type: 'TokensPurchased', data: { lot: { lotId: 'lot-bought', priority: 50, expiresAt: inDays(365).toISOString() } } });
    expect(stateOf(events).lots.get('lot-bought')).toMatchObject({ source: 'purchase', paymentId });
  });

  it('refunds a purchase whose lot is whole, from that lot, even when other credit was spent', () => {
    const events = history([buy('paid', 50), initiate, capture(), use(50)]);
    // The usage drew the older lot first, so the purchase's lot is whole.
    const requested = history([request], events);
    // The request reserves the purchase's tokens in its own lot: usage can no longer reach them.
    expect(stateOf(requested).lots.get('lot-bought')).toMatchObject({ remaining: 100, reserved: 100 });
    spec.given(requested).when(use(1)).thenThrows('INSUFFICIENT_BALANCE', { balance: 100, available: 0 });
    const refunded = tokenAccountDecider.decide(refund, stateOf(requested));
    expect(refunded[1]).toMatchObject({ type: 'TokensRefunded', data: { amount: 100, draws: [{ lotId: 'lot-bought', amount: 100 }], balanceAfter: 0 } });
    expect(stateOf([...requested, ...refunded]).lots.size).toBe(0);
  });

  it('refuses the refund of a purchase partly spent, though the balance holds as many tokens', () => {
    const events = history([initiate, capture(), buy('later', 500), use(1)]);
    spec.given(events).when(request).thenThrows('REFUND_EXCEEDS_LOT', { paymentId, lotId: 'lot-bought', requested: 100, remaining: 99 });
  });

  it('refuses the refund of a purchase partly held', () => {
    const events = history([initiate, capture(), hold('h', 1)]);
    spec.given(events).when(request).thenThrows('REFUND_EXCEEDS_LOT');
  });

  // Capture and refunds are decided at their `now` like every other command: a hold or lot past its
  // expiry counts as ended whether or not the expiry job has run, and its end is appended with them.
  const requestAt = (instant: Date): RequestRefund => ({ ...request, data: { ...request.data, now: instant } });
  const refundAt = (instant: Date): RefundPayment => ({ ...refund, data: { ...refund.data, now: instant } });
  const heldFor = (seconds: number) => history([initiate, capture(), hold('h', 40, seconds)]);
  const holdExpired = (instant: Date): TokenAccountEvent => ({
    type: 'HoldExpired',
    data: { userId, holdId: 'h', amount: 40, expiresAt: new Date(now.getTime() + 60_000).toISOString(), balanceAfter: 100, heldAfter: 0, occurredAt: instant.toISOString() },
  });

  it('asks the refund of a purchase whose hold expires at that instant, before the expiry job has run, ending the hold with it', () => {
    const expiry = new Date(now.getTime() + 60_000);
    spec.given(heldFor(60)).when(requestAt(new Date(expiry.getTime() - 1))).thenThrows('REFUND_EXCEEDS_LOT', { paymentId, lotId: 'lot-bought', requested: 100, remaining: 60 });
    const decided = tokenAccountDecider.decide(requestAt(expiry), stateOf(heldFor(60)));
    expect(decided).toEqual([holdExpired(expiry), { type: 'PaymentRefundRequested', data: expect.objectContaining({ paymentId }) as unknown }]);
    expect(stateOf([...heldFor(60), ...decided]).lots.get('lot-bought')).toMatchObject({ remaining: 100, reserved: 100 });
  });

  it('takes back all of a purchase the provider refunded on its own once the hold on its lot has expired, rather than leave the held part', () => {
    const expiry = new Date(now.getTime() + 60_000);
    const decided = tokenAccountDecider.decide(refundAt(expiry), stateOf(heldFor(60)));
    expect(decided.map((event) => event.type)).toEqual(['HoldExpired', 'PaymentRefunded', 'TokensRefunded']);
    expect(decided[1]).toMatchObject({ data: { tokens: 100, tokensDebited: 100 } });
    expect(decided[2]).toMatchObject({ data: { amount: 100, draws: [{ lotId: 'lot-bought', amount: 100 }], balanceAfter: 0 } });
  });

  describe('a refund the provider made on its own while a hold held part of the purchase', () => {
    // 100 tokens bought, 40 of them held; the provider refunds the money (an operator at Stripe).
    const refundedWhileHeld = (more: readonly TokenAccountCommand[] = []) => history([initiate, capture(), hold('h', 40, 3600), ...more, refund]);
    const release: TokenAccountCommand = { type: 'ReleaseHold', data: { userId, holdId: 'h', transactionId: 'tx-release', now } };
    const settle = (amount: number): SettleHold => ({ type: 'SettleHold', data: { userId, holdId: 'h', amount, description: null, transactionId: 'tx-settle', now } });
    const takeback = (amount: number, transactionId: string, balanceAfter: number): TokenAccountEvent => ({
      type: 'TokensRefunded',
      data: {
        userId,
        transactionId,
        paymentId,
        amount,
        description: 'Refund of token package starter',
        balanceAfter,
        occurredAt: now.toISOString(),
        draws: [{ lotId: 'lot-bought', amount }],
        heldAtRefund: true,
        heldAfter: 0,
      },
    });

    it('takes the free part at once and leaves the held part to the hold, which can still settle it', () => {
      const events = refundedWhileHeld();
      expect(events.slice(-2)).toMatchObject([
        { type: 'PaymentRefunded', data: { tokens: 100, tokensDebited: 60 } },
        { type: 'TokensRefunded', data: { amount: 60, draws: [{ lotId: 'lot-bought', amount: 60 }], balanceAfter: 40 } },
      ]);
      expect(stateOf(events)).toMatchObject({ balance: 40, held: 40 });
      spec.given(events).when(use(1)).thenThrows('INSUFFICIENT_AVAILABLE_BALANCE', { balance: 40, held: 40, available: 0 });
    });

    it('takes what a release gives back, in the same append, so the released tokens are never spendable', () => {
      const events = refundedWhileHeld();
      const decided = tokenAccountDecider.decide(release, stateOf(events));
      expect(decided).toEqual([
        { type: 'HoldReleased', data: { userId, holdId: 'h', amount: 40, balanceAfter: 40, heldAfter: 0, occurredAt: now.toISOString() } },
        takeback(40, derivedTransactionId('tx-release', `refund-remainder:${paymentId}:after`), 0),
      ]);
      const after = stateOf([...events, ...decided]);
      expect(after).toMatchObject({ balance: 0, held: 0 });
      expect(after.lots.size).toBe(0);
      expect(after.payments.get(paymentId)).toMatchObject({ status: 'REFUNDED', tokensDebited: 100 });
      spec.given([...events, ...decided]).when(use(1)).thenThrows('INSUFFICIENT_BALANCE');
    });

    it('takes what a settle for less releases; the settled part stays spent', () => {
      const events = refundedWhileHeld();
      const decided = tokenAccountDecider.decide(settle(15), stateOf(events));
      expect(decided.map((event) => event.type)).toEqual(['HoldSettled', 'TokensRefunded']);
      expect(decided[0]).toMatchObject({ data: { settledAmount: 15, releasedAmount: 25, draws: [{ lotId: 'lot-bought', amount: 15 }], balanceAfter: 25 } });
      expect(decided[1]).toEqual(takeback(25, derivedTransactionId('tx-settle', `refund-remainder:${paymentId}:after`), 0));
      expect(stateOf([...events, ...decided]).payments.get(paymentId)).toMatchObject({ tokensDebited: 85 });
      // Settled whole, nothing comes back and nothing more is taken.
      expect(tokenAccountDecider.decide(settle(40), stateOf(events)).map((event) => event.type)).toEqual(['HoldSettled']);
    });

    it('takes what the hold gives back when it expires, by the expiry job or the next command, and nothing before', () => {
      // Another purchase after the hold: the hold holds the refunded purchase's tokens.
      const events = refundedWhileHeld([buy('other', 500)]);
      const expiry = new Date(now.getTime() + 3_600_000);
      expect(tokenAccountDecider.decide(expireCredits(new Date(expiry.getTime() - 1)), stateOf(events))).toEqual([]);
      const byJob = tokenAccountDecider.decide(expireCredits(expiry), stateOf(events));
      expect(byJob.map((event) => event.type)).toEqual(['HoldExpired', 'TokensRefunded']);
      // One take after the holds, not one at each hold's end (only a shortfall takes at each): its id names the sweep alone.
      expect(byJob[1]).toMatchObject({ data: { amount: 40, draws: [{ lotId: 'lot-bought', amount: 40 }], balanceAfter: 500, heldAtRefund: true, transactionId: derivedTransactionId('tx-job', `refund-remainder:${paymentId}:job`) } });
      // A usage at that instant decides the same first; the other purchase's tokens are not touched.
      const byUsage = tokenAccountDecider.decide(use(500, expiry), stateOf(events));
      expect(byUsage.map((event) => event.type)).toEqual(['HoldExpired', 'TokensRefunded', 'TokensUsed']);
      expect(stateOf([...events, ...byUsage])).toMatchObject({ balance: 0, held: 0 });
    });

    it('keeps holding back through a snapshot when one of two holds settles whole, and takes what the other gives back', () => {
      const twoHolds = history([initiate, capture(), hold('h1', 30, 3600), hold('h2', 30, 3600), refund]);
      expect(stateOf(twoHolds).refundsHeldBack.toJS()).toEqual({ [paymentId]: { lotId: 'lot-bought', amount: 60 } });
      const settledWhole = history([{ type: 'SettleHold', data: { userId, holdId: 'h1', amount: 30, description: null, transactionId: 'tx-s1', now } }], twoHolds);
      const state = stateOf(settledWhole);
      // 60 held back, 30 still held in the lot: the snapshot keeps the entry as it is.
      expect(state.refundsHeldBack.get(paymentId)).toEqual({ lotId: 'lot-bought', amount: 60 });
      const decoded = tokenAccountSnapshot.decode(JSON.parse(JSON.stringify(tokenAccountSnapshot.encode(state))));
      const released = tokenAccountDecider.decide({ type: 'ReleaseHold', data: { userId, holdId: 'h2', transactionId: 'tx-r2', now } }, decoded);
      expect(released.map((event) => event.type)).toEqual(['HoldReleased', 'TokensRefunded']);
      const after = fold(tokenAccountDecider, decoded, released);
      expect({ balance: after.balance, lots: after.lots.size, heldBack: after.refundsHeldBack.size, debited: after.payments.get(paymentId)?.tokensDebited }).toEqual({ balance: 0, lots: 0, heldBack: 0, debited: 70 });
    });

    it('holds back nothing and takes nothing when any dispute of the payment was lost, though another is open', () => {
      const reported = (disputeId: string, status: 'open' | 'lost'): TokenAccountCommand => ({
        type: 'RecordDispute',
        data: { userId, paymentId, disputeId, status, amount: 500, currency: 'USD', reason: 'fraudulent', transactionId: `tx-${disputeId}-${status}`, now },
      });
      const disputed = history([initiate, capture(), hold('h', 40, 3600), reported('dp_1', 'open'), reported('dp_2', 'lost')]);
      const refunded = tokenAccountDecider.decide(refund, stateOf(disputed));
      expect(refunded).toEqual([expect.objectContaining({ type: 'PaymentRefunded', data: expect.objectContaining({ tokensDebited: 0 }) as unknown })]);
      expect(refunded[0]?.data).not.toHaveProperty('heldBack');
    });

    it('leaves what a hold gives back to a lost dispute of the payment: its shortfall takes it, never both', () => {
      const lostDispute = (at: Date): TokenAccountCommand => ({
        type: 'RecordDispute',
        data: { userId, paymentId, disputeId: 'dp_1', status: 'lost', amount: 500, currency: 'USD', reason: 'fraudulent', transactionId: 'tx-dispute', now: at },
      });
      // Lost after the refund: it owes what the refund left untaken (the 40 held), none free to take.
      const disputed = history([lostDispute(now)], refundedWhileHeld());
      expect(stateOf(disputed)).toMatchObject({ balance: 40, shortfall: 40 });
      const released = tokenAccountDecider.decide(release, stateOf(disputed));
      expect(released.map((event) => event.type)).toEqual(['HoldReleased', 'ShortfallCovered']);
      expect(stateOf([...disputed, ...released])).toMatchObject({ balance: 0, shortfall: 0 });
      // Lost after the release took the rest: nothing is owed twice.
      const takenFirst = history([release, lostDispute(now)], refundedWhileHeld());
      expect(takenFirst.at(-1)).toMatchObject({ type: 'PaymentDisputeClosed', data: { tokens: 0, tokensDebited: 0, shortfallAfter: 0 } });
      expect(stateOf(takenFirst)).toMatchObject({ balance: 0, shortfall: 0 });
    });
  });

  describe('a hold that expires during a shortfall of lost disputes: its tokens pay it off as it ends (ADR 0024)', () => {
    const lost = (at: Date, disputed = paymentId): TokenAccountCommand => ({
      type: 'RecordDispute',
      data: { userId, paymentId: disputed, disputeId: `dp-${disputed}`, status: 'lost', amount: 500, currency: 'USD', reason: 'fraudulent', transactionId: `tx-dp-${disputed}`, now: at },
    });
    const expiry = new Date(now.getTime() + 3_600_000);
    const after = new Date(expiry.getTime() + 1_000);
    /** A grant of 100 (priority 10: spent first) and the purchase of 100, both held by hold h of 200 that ends at `expiry`; the purchase's dispute is lost meanwhile: 100 owed, none free. */
    const owing = (grantExpiresAt: Date | null = null) =>
      history([grant('promo', 100, { priority: 10, expiresAt: grantExpiresAt }), initiate, capture(), hold('h', 200, 3600), lost(new Date(now.getTime() + 600_000))]);
    const coverAtHoldEnd = (amount: number, lotId: string, balanceAfter: number, at: Date, transactionId: string, phase: string): TokenAccountEvent => ({
      type: 'ShortfallCovered',
      data: {
        userId,
        transactionId: derivedTransactionId(transactionId, `shortfall-covered:h:${phase}`),
        amount,
        description: 'Shortfall of lost disputes covered',
        balanceAfter,
        heldAfter: 0,
        shortfallAfter: 0,
        draws: [{ lotId, amount }],
        occurredAt: at.toISOString(),
      },
    });
    const holdExpiredAt = (at: Date): TokenAccountEvent => ({ type: 'HoldExpired', data: { userId, holdId: 'h', amount: 200, expiresAt: expiry.toISOString(), balanceAfter: 200, heldAfter: 0, occurredAt: at.toISOString() } });

    it('pays it off before the command is decided: a grant void after the hold ended finds the grant spent, whether or not the expiry job ran first', () => {
      const events = owing();
      expect(stateOf(events)).toMatchObject({ balance: 200, held: 200, shortfall: 100 });
      // The job first: the hold's end pays the grant's 100 (first in draw-down order) to the shortfall.
      const byJob = tokenAccountDecider.decide(expireCredits(expiry), stateOf(events));
      expect(byJob).toEqual([holdExpiredAt(expiry), coverAtHoldEnd(100, 'promo', 100, expiry, 'tx-job', 'job')]);
      spec.given([...events, ...byJob]).when(voidGrant('promo', { now: after })).thenThrows('LOT_NOT_FOUND', { lotId: 'promo' });
      // The void first: refused too (the state before the sweep still knows the grant, spent by the sweep). It found the grant's 100 free beside the shortfall, voided them, and the cover took the purchase's: 100 paid tokens lost.
      spec
        .given(events)
        .when(voidGrant('promo', { now: after }))
        .thenThrows('LOT_NOT_ACTIVE', { lotId: 'promo', lotStatus: 'spent' });
      const bySweep = tokenAccountDecider.decide(expireCredits(after), stateOf(events));
      expect(stateOf([...events, ...bySweep])).toMatchObject({ balance: 100, held: 0, shortfall: 0 });
      expect([...stateOf([...events, ...bySweep]).lots.keys()]).toEqual(['lot-bought']);
    });

    it('lets usage through once the hold has ended and its tokens paid the shortfall, as the balance shows, before the expiry job has run', () => {
      const events = owing();
      spec.given(events).when(use(10, new Date(expiry.getTime() - 1))).thenThrows('ACCOUNT_IN_SHORTFALL', { shortfall: 100 });
      const decided = tokenAccountDecider.decide(use(10, after), stateOf(events));
      expect(decided.slice(0, 2)).toEqual([holdExpiredAt(after), coverAtHoldEnd(100, 'promo', 100, after, 'tx-use', 'before')]);
      expect(decided[2]).toMatchObject({ type: 'TokensUsed', data: { amount: 10, balanceAfter: 90, draws: [{ lotId: 'lot-bought', amount: 10 }] } });
      expect(stateOf([...events, ...decided])).toMatchObject({ balance: 90, shortfall: 0 });
    });

    it("pays from a lot live at the hold's end though it expired before the sweep ran: the outcome does not wait on the job", () => {
      // The grant expires an hour after the hold; the first sweep comes an hour after that.
      const events = owing(new Date(expiry.getTime() + 3_600_000));
      const late = new Date(expiry.getTime() + 7_200_000);
      const timely = history([expireCredits(expiry)], events);
      const lateSweep = tokenAccountDecider.decide(expireCredits(late), stateOf(events));
      expect(lateSweep).toEqual([holdExpiredAt(late), coverAtHoldEnd(100, 'promo', 100, late, 'tx-job', 'job')]);
      expect(stateOf([...events, ...lateSweep])).toMatchObject({ balance: 100, shortfall: 0 });
      expect(stateOf(history([expireCredits(late)], timely))).toMatchObject({ balance: 100, shortfall: 0 });
      // A grant that expired while still held (before the hold's end) pays nothing: its tokens were gone at that instant.
      const expiredFirst = owing(new Date(expiry.getTime() - 60_000));
      const swept = tokenAccountDecider.decide(expireCredits(expiry), stateOf(expiredFirst));
      expect(swept.map((event) => event.type)).toEqual(['HoldExpired', 'ShortfallCovered', 'LotExpired']);
      expect(swept[1]).toMatchObject({ data: { amount: 100, draws: [{ lotId: 'lot-bought', amount: 100 }] } });
      expect(swept[2]).toMatchObject({ data: { lotId: 'promo', amount: 100 } });
      expect(stateOf([...expiredFirst, ...swept])).toMatchObject({ balance: 0, shortfall: 0 });
    });

    it("lets a refund held back take what the hold gives back of its own lot first, at each hold's end, and pays the shortfall from the rest", () => {
      const disputedPayment = 'pay-disputed';
      const initiateDisputed: InitiatePayment = { ...initiate, data: { ...initiate.data, paymentId: disputedPayment, orderId: 'O-2' } };
      const captureDisputed: CapturePayment = { type: 'CapturePayment', data: { userId, paymentId: disputedPayment, outcome: { status: 'captured', providerTransactionId: 'C-2' }, transactionId: 'lot-disputed', now } };
      // Two holds of 100: h1 on the refunded purchase's lot (older: drawn first), h2 on the disputed one's. The provider refunds the first on its own (100 held back); the second's dispute is lost (100 owed).
      const holdFor = (holdId: string, minutes: number): HoldTokens => ({ ...hold(holdId, 100), data: { ...hold(holdId, 100).data, ttlSeconds: minutes * 60 } });
      const events = history([initiate, capture(), initiateDisputed, captureDisputed, holdFor('h1', 60), holdFor('h2', 60), refund, lost(now, disputedPayment)]);
      expect(stateOf(events)).toMatchObject({ balance: 200, held: 200, shortfall: 100 });
      const decided = tokenAccountDecider.decide(expireCredits(expiry), stateOf(events));
      expect(decided.map((event) => [event.type, 'holdId' in event.data ? event.data.holdId : 'draws' in event.data ? event.data.draws : null])).toEqual([
        ['HoldExpired', 'h1'],
        ['TokensRefunded', [{ lotId: 'lot-bought', amount: 100 }]],
        ['HoldExpired', 'h2'],
        ['ShortfallCovered', [{ lotId: 'lot-disputed', amount: 100 }]],
      ]);
      expect(decided[1]).toMatchObject({ data: { transactionId: derivedTransactionId('tx-job', `refund-remainder:${paymentId}:h1:job`), heldAtRefund: true } });
      expect(decided[3]).toMatchObject({ data: { transactionId: derivedTransactionId('tx-job', 'shortfall-covered:h2:job') } });
      expect(stateOf([...events, ...decided])).toMatchObject({ balance: 0, held: 0, shortfall: 0 });
      expect(stateOf([...events, ...decided]).payments.get(paymentId)).toMatchObject({ status: 'REFUNDED', tokensDebited: 100 });
    });
  });

  it("refuses the refund of a purchase whose lot expired, though the expiry job has not run: its tokens are gone at that instant", () => {
    const events = history([initiate, capture({ priority: LOT_PRIORITY_DEFAULT, expiresInDays: 1 }), buy('other', 500)]);
    spec.given(events).when(requestAt(inDays(1))).thenThrows('REFUND_EXCEEDS_LOT', { paymentId, lotId: 'lot-bought', requested: 100, remaining: 0 });
    // One millisecond before, the lot is whole and the refund is asked.
    expect(tokenAccountDecider.decide(requestAt(new Date(inDays(1).getTime() - 1)), stateOf(events)).map((event) => event.type)).toEqual(['PaymentRefundRequested']);
  });
});

describe('lots: streams written before lots', () => {
  const at = '2026-01-01T00:00:00.000Z';
  const legacy: TokenAccountEvent[] = [
    { type: 'TokensPurchased', data: { userId, transactionId: 't1', paymentId: 'p1', amount: 100, description: null, balanceAfter: 100, occurredAt: at } },
    { type: 'TokensUsed', data: { userId, transactionId: 't2', amount: 30, description: null, balanceAfter: 70, occurredAt: at } },
    { type: 'TokensAdjusted', data: { userId, transactionId: 't3', amount: 5, reason: 'Goodwill', balanceAfter: 75, occurredAt: at } },
    { type: 'TokensAdjusted', data: { userId, transactionId: 't4', amount: -10, reason: 'Chargeback', balanceAfter: 65, occurredAt: at } },
  ];

  it('fold to the same balance with one opening lot without expiry holding all of it', () => {
    const state = stateOf(legacy);
    expect(state.balance).toBe(65);
    expect([...state.lots.values()]).toEqual([
      { lotId: OPENING_LOT_ID, source: 'opening', paymentId: null, priority: LOT_PRIORITY_DEFAULT, expiresAt: null, original: 105, remaining: 65, reserved: 0, sequence: 0, expiresAtMs: Number.POSITIVE_INFINITY },
    ]);
  });

  it('refuse a void of the opening lot, which is no grant', () => {
    spec.given(legacy).when(voidGrant(OPENING_LOT_ID)).thenThrows('LOT_NOT_A_GRANT', { lotId: OPENING_LOT_ID, source: 'opening' });
  });

  it('take a provider payment bought before lots back from the opening lot, the part a hold held when the hold gives it back', () => {
    // A payment of 100 captured before lots and 100 more credit, both in the opening lot; then 180 held.
    const paymentId = 'pay-legacy';
    const ids = { userId, paymentId, orderId: 'O-legacy' };
    const bought: TokenAccountEvent[] = [
      { type: 'PaymentInitiated', data: { ...ids, packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'stripe', occurredAt: at, expiresAt: '2026-01-01T01:00:00.000Z' } },
      { type: 'PaymentCaptured', data: { ...ids, providerTransactionId: 'ch_1', occurredAt: at } },
      { type: 'TokensPurchased', data: { userId, transactionId: 't-p', paymentId, amount: 100, description: null, balanceAfter: 100, occurredAt: at } },
      { type: 'TokensPurchased', data: { userId, transactionId: 't-q', paymentId: 'other', amount: 100, description: null, balanceAfter: 200, occurredAt: at } },
    ];
    const held = history([hold('h', 180)], bought);
    const refunded = tokenAccountDecider.decide({ type: 'RefundPayment', data: { ...ids, providerRefundId: 're_1', transactionId: 'tx-refund', now } }, stateOf(held));
    expect(refunded).toMatchObject([
      { type: 'PaymentRefunded', data: { tokens: 100, tokensDebited: 20, heldBack: 80 } },
      { type: 'TokensRefunded', data: { amount: 20, draws: [{ lotId: OPENING_LOT_ID, amount: 20 }], balanceAfter: 180 } },
    ]);
    const released = history([{ type: 'ReleaseHold', data: { userId, holdId: 'h', transactionId: 'tx-release', now } }], [...held, ...refunded]);
    expect(released.at(-1)).toMatchObject({ type: 'TokensRefunded', data: { amount: 80, heldAtRefund: true, balanceAfter: 100 } });
    // The other credit's 100 stay, spendable; the refund took the payment's 100 and no more.
    expect(stateOf(released)).toMatchObject({ balance: 100, held: 0 });
    expect(stateOf(released).payments.get(paymentId)?.tokensDebited).toBe(100);
    expect(stateOf(released).refundsHeldBack.size).toBe(0);
  });

  it('share what holds give back to the opening lot among provider payments bought before lots and refunded while held, never promising it twice', () => {
    const legacyPayment = (paymentId: string, balanceAfter: number): TokenAccountEvent[] => {
      const ids = { userId, paymentId, orderId: `O-${paymentId}` };
      return [
        { type: 'PaymentInitiated', data: { ...ids, packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'stripe', occurredAt: at, expiresAt: '2026-01-01T01:00:00.000Z' } },
        { type: 'PaymentCaptured', data: { ...ids, providerTransactionId: `ch-${paymentId}`, occurredAt: at } },
        { type: 'TokensPurchased', data: { userId, transactionId: `t-${paymentId}`, paymentId, amount: 100, description: null, balanceAfter, occurredAt: at } },
      ];
    };
    const refundOf = (paymentId: string): TokenAccountCommand => ({ type: 'RefundPayment', data: { userId, paymentId, providerRefundId: `re-${paymentId}`, transactionId: `tx-${paymentId}`, now } });
    // Both 100s held whole, by two holds; both payments refunded at the provider.
    const refunded = history([hold('h1', 100, 60), hold('h2', 100, 120), refundOf('pay-1'), refundOf('pay-2')], [...legacyPayment('pay-1', 100), ...legacyPayment('pay-2', 200)]);
    expect(refunded.filter((event) => event.type === 'PaymentRefunded').map((event) => event.data)).toMatchObject([
      { paymentId: 'pay-1', tokensDebited: 0, heldBack: 100 },
      { paymentId: 'pay-2', tokensDebited: 0, heldBack: 100 },
    ]);
    // The first hold's 100 go to the first payment; the second payment waits for the second hold.
    const first = tokenAccountDecider.decide({ type: 'ReleaseHold', data: { userId, holdId: 'h1', transactionId: 'tx-r1', now } }, stateOf(refunded));
    expect(first.map((event) => (event.type === 'TokensRefunded' ? [event.data.paymentId, event.data.amount] : event.type))).toEqual(['HoldReleased', ['pay-1', 100]]);
    // Both holds expiring at once: each payment takes its 100, with ids of its own.
    const both = tokenAccountDecider.decide(expireCredits(new Date(now.getTime() + 120_000)), stateOf(refunded));
    const takes = both.flatMap((event) => (event.type === 'TokensRefunded' ? [event.data] : []));
    expect(takes.map((take) => [take.paymentId, take.amount, take.balanceAfter])).toEqual([
      ['pay-1', 100, 100],
      ['pay-2', 100, 0],
    ]);
    expect(new Set(takes.map((take) => take.transactionId)).size).toBe(2);
    expect(stateOf([...refunded, ...both])).toMatchObject({ balance: 0, held: 0 });
    // Refunded in the other order, the takes still go in payment id order: the same events whatever
    // order the refunds came in, and whether the state was folded or decoded from a snapshot.
    const refundedBackwards = history([hold('h1', 100, 60), hold('h2', 100, 120), refundOf('pay-2'), refundOf('pay-1')], [...legacyPayment('pay-1', 100), ...legacyPayment('pay-2', 200)]);
    expect([...stateOf(refundedBackwards).refundsHeldBack.keys()]).toEqual(['pay-2', 'pay-1']);
    const backwards = tokenAccountDecider.decide(expireCredits(new Date(now.getTime() + 120_000)), stateOf(refundedBackwards));
    expect(backwards.flatMap((event) => (event.type === 'TokensRefunded' ? [[event.data.paymentId, event.data.amount, event.data.balanceAfter]] : []))).toEqual([
      ['pay-1', 100, 100],
      ['pay-2', 100, 0],
    ]);
    const decoded = tokenAccountSnapshot.decode(JSON.parse(JSON.stringify(tokenAccountSnapshot.encode(stateOf(refundedBackwards)))));
    expect(tokenAccountDecider.decide(expireCredits(new Date(now.getTime() + 120_000)), decoded)).toEqual(backwards);
  });

  it('hold back no more than the holds hold beside what earlier refunds hold back in the opening lot', () => {
    const ids = (paymentId: string) => ({ userId, paymentId, orderId: `O-${paymentId}` });
    const bought = (paymentId: string, balanceAfter: number): TokenAccountEvent[] => [
      { type: 'PaymentInitiated', data: { ...ids(paymentId), packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'stripe', occurredAt: at, expiresAt: '2026-01-01T01:00:00.000Z' } },
      { type: 'PaymentCaptured', data: { ...ids(paymentId), providerTransactionId: `ch-${paymentId}`, occurredAt: at } },
      { type: 'TokensPurchased', data: { userId, transactionId: `t-${paymentId}`, paymentId, amount: 100, description: null, balanceAfter, occurredAt: at } },
    ];
    // 200 bought in the opening lot, 50 spent, the other 150 held: the first refund holds back 100, the second only the 50 left held.
    const spent: TokenAccountEvent = { type: 'TokensUsed', data: { userId, transactionId: 't-use', amount: 50, description: null, balanceAfter: 150, occurredAt: at } };
    const events = history(
      [hold('h', 150), { type: 'RefundPayment', data: { ...ids('pay-1'), providerRefundId: 're-1', transactionId: 'tx-1', now } }, { type: 'RefundPayment', data: { ...ids('pay-2'), providerRefundId: 're-2', transactionId: 'tx-2', now } }],
      [...bought('pay-1', 100), ...bought('pay-2', 200), spent],
    );
    expect(events.filter((event) => event.type === 'PaymentRefunded').map((event) => event.data)).toMatchObject([
      { paymentId: 'pay-1', tokensDebited: 0, heldBack: 100 },
      { paymentId: 'pay-2', tokensDebited: 0, heldBack: 50 },
    ]);
    // The hold's 150 back: all of it to the two refunds, none left to spend.
    const released = history([{ type: 'ReleaseHold', data: { userId, holdId: 'h', transactionId: 'tx-r', now } }], events);
    expect(stateOf(released)).toMatchObject({ balance: 0, held: 0 });
    // A stream that promised the same held tokens to both is refused by replay.
    const promisedTwice = events.map((event) => (event.type === 'PaymentRefunded' && event.data.paymentId === 'pay-2' ? { ...event, data: { ...event.data, heldBack: 100 } } : event));
    expect(() => stateOf(promisedTwice)).toThrow(LedgerInvariantViolation);
  });

  it('keep spending: new credit goes to lots of its own, the opening lot is spent in order', () => {
    const events = history([grant('promo', 10, { expiresAt: null }), use(70)], legacy);
    expect(drawsOf(events.slice(legacy.length))).toEqual([
      [
        { lotId: 'promo', amount: 10 },
        { lotId: OPENING_LOT_ID, amount: 60 },
      ],
    ]);
    const state = stateOf(events);
    const decoded = tokenAccountSnapshot.decode(JSON.parse(JSON.stringify(tokenAccountSnapshot.encode(state))));
    expect(decoded.lots.toJS()).toEqual(state.lots.toJS());
    expect(decoded.balance).toBe(5);
  });
});
