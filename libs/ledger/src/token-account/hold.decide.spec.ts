import { fold } from '../decider.js';
import { LedgerError, LedgerInvariantViolation } from '../ledger.errors.js';
import { ACTIVE_HOLDS_MAX, DESCRIPTION_LENGTH_MAX, ENDED_HOLDS_REMEMBERED_MAX, HOLD_TTL_SECONDS_MAX, LOT_PRIORITY_DEFAULT, TOKEN_AMOUNT_MAX } from '../ledger.limits.js';
import { deciderSpecification } from '../testing/decider-specification.js';
import type { HoldTokens, ReleaseHold, SettleHold } from './hold.commands.js';
import type { HoldExpired, HoldSettled, TokensHeld } from './hold.events.js';
import type { AddTokens, TokenAccountCommand, UseTokens } from './token-account.commands.js';
import { tokenAccountDecider } from './token-account.decider.js';
import type { TokenAccountEvent, TokensPurchased } from './token-account.events.js';
import { tokenAccountSnapshot } from './token-account.snapshot.js';
import { holdWithoutActive } from './hold.decide.js';

const userId = '11111111-1111-4111-8111-111111111111';
const holdId = '55555555-5555-4555-8555-555555555555';
const lotId = 'lot-paid';
const now = new Date('2026-11-24T12:00:00.000Z');
const expiresAt = '2026-11-24T12:15:00.000Z';
const spec = deciderSpecification(tokenAccountDecider);

const funded: TokensPurchased = {
  type: 'TokensPurchased',
  data: {
    userId,
    transactionId: lotId,
    paymentId: 'pay-1',
    amount: 100,
    description: null,
    balanceAfter: 100,
    occurredAt: '2026-11-24T11:00:00.000Z',
    lot: { lotId, priority: LOT_PRIORITY_DEFAULT, expiresAt: null },
    heldAfter: 0,
  },
};

function hold(overrides: Partial<HoldTokens['data']> = {}): HoldTokens {
  return { type: 'HoldTokens', data: { userId, holdId, amount: 40, description: 'Completion estimate', ttlSeconds: 900, ttlSecondsMax: 86_400, transactionId: 'tx-hold', now, ...overrides } };
}

function settle(amount: number, at = now, description: string | null = null): SettleHold {
  return { type: 'SettleHold', data: { userId, holdId, amount, description, transactionId: 'tx-settle', now: at } };
}

function release(at = now, id = holdId): ReleaseHold {
  return { type: 'ReleaseHold', data: { userId, holdId: id, transactionId: 'tx-release', now: at } };
}

function use(amount: number, at = now): UseTokens {
  return { type: 'UseTokens', data: { userId, amount, description: null, transactionId: 'tx-use', now: at } };
}

const held: TokensHeld = {
  type: 'TokensHeld',
  data: {
    userId,
    holdId,
    amount: 40,
    description: 'Completion estimate',
    expiresAt,
    draws: [{ lotId, amount: 40 }],
    balanceAfter: 100,
    heldAfter: 40,
    occurredAt: now.toISOString(),
  },
};

/** The events a sequence of commands appends, each decided on the state the earlier ones left. */
function history(commands: readonly TokenAccountCommand[], from: readonly TokenAccountEvent[] = [funded]): TokenAccountEvent[] {
  const events = [...from];
  for (const command of commands) events.push(...tokenAccountDecider.decide(command, fold(tokenAccountDecider, tokenAccountDecider.initialState, events)));
  return events;
}

const after = (seconds: number) => new Date(now.getTime() + seconds * 1000);

describe('holds: HoldTokens', () => {
  it('sets tokens aside from the lots without changing the balance', () => {
    spec.given([funded]).when(hold()).then([held]);
  });

  it('may hold exactly the available balance, and refuses one token more with the totals', () => {
    spec.given([funded]).when(hold({ amount: 100 })).then([{ ...held, data: { ...held.data, amount: 100, draws: [{ lotId, amount: 100 }], heldAfter: 100 } }]);
    spec.given([funded, held]).when(hold({ holdId: 'other', amount: 61 })).thenThrows('INSUFFICIENT_AVAILABLE_BALANCE', { balance: 100, held: 40, available: 60, requested: 61 });
  });

  it.each([0, -1, 1.5, TOKEN_AMOUNT_MAX + 1])('refuses the amount %p', (amount) => {
    spec.given([funded]).when(hold({ amount })).thenThrows('AMOUNT_OUT_OF_RANGE');
  });

  it.each([0, -1, 0.5, 86_401])('refuses a time to live of %p seconds outside 1 to the configured maximum', (ttlSeconds) => {
    spec.given([funded]).when(hold({ ttlSeconds })).thenThrows('HOLD_TTL_OUT_OF_RANGE', { min: 1, max: 86_400 });
  });

  it('accepts the shortest time to live, one second', () => {
    const [event] = tokenAccountDecider.decide(hold({ ttlSeconds: 1 }), fold(tokenAccountDecider, tokenAccountDecider.initialState, [funded]));
    expect(event?.type === 'TokensHeld' && event.data.expiresAt).toBe(after(1).toISOString());
  });

  it('caps the configured maximum time to live at the ledger limit, and accepts the limit itself', () => {
    spec.given([funded]).when(hold({ ttlSeconds: HOLD_TTL_SECONDS_MAX + 1, ttlSecondsMax: Number.MAX_SAFE_INTEGER })).thenThrows('HOLD_TTL_OUT_OF_RANGE', { max: HOLD_TTL_SECONDS_MAX });
    const [event] = tokenAccountDecider.decide(hold({ ttlSeconds: HOLD_TTL_SECONDS_MAX, ttlSecondsMax: HOLD_TTL_SECONDS_MAX }), fold(tokenAccountDecider, tokenAccountDecider.initialState, [funded]));
    expect(event?.type === 'TokensHeld' && event.data.expiresAt).toBe(new Date(now.getTime() + HOLD_TTL_SECONDS_MAX * 1000).toISOString());
  });

  it('refuses a description longer than the limit', () => {
    spec.given([funded]).when(hold({ description: 'd'.repeat(DESCRIPTION_LENGTH_MAX + 1) })).thenThrows('DESCRIPTION_TOO_LONG');
  });

  it('decides nothing for the same hold id with the same payload, and refuses it with another', () => {
    spec.given([funded, held]).when(hold()).thenNothing();
    spec.given([funded, held]).when(hold({ amount: 41 })).thenThrows('HOLD_ID_REUSED', { holdId });
    spec.given([funded, held]).when(hold({ description: 'other' })).thenThrows('HOLD_ID_REUSED', { holdId });
  });

  it('refuses the id of a hold that has ended', () => {
    spec.given(history([hold(), release()])).when(hold()).thenThrows('HOLD_ID_REUSED', { holdId });
  });

  it(`refuses hold number ${ACTIVE_HOLDS_MAX + 1} while ${ACTIVE_HOLDS_MAX} are active, and accepts it once one ended`, () => {
    const full = history(Array.from({ length: ACTIVE_HOLDS_MAX }, (_, index) => hold({ holdId: `h-${index}`, amount: 1 })));
    spec
      .given(full)
      .when(hold({ amount: 1 }))
      .thenThrows('HOLD_LIMIT_REACHED', { active: ACTIVE_HOLDS_MAX, max: ACTIVE_HOLDS_MAX }, `the account has ${ACTIVE_HOLDS_MAX} active holds, the most it may have`);
    const [placed] = tokenAccountDecider.decide(hold({ amount: 1 }), fold(tokenAccountDecider, tokenAccountDecider.initialState, history([release(now, 'h-0')], full)));
    expect(placed?.type).toBe('TokensHeld');
  });
});

describe('holds: what a refused command tells the client (code, details and the problem detail)', () => {
  it('tells the client why a hold is refused', () => {
    spec
      .given([funded])
      .when(hold({ ttlSeconds: 0, ttlSecondsMax: 3600 }))
      .thenThrows('HOLD_TTL_OUT_OF_RANGE', { expiresInSeconds: 0, min: 1, max: 3600 }, 'expiresInSeconds must be an integer from 1 to 3600');
    spec
      .given([funded, held])
      .when(hold({ amount: 41 }))
      .thenThrows('HOLD_ID_REUSED', { holdId }, `hold ${holdId} was already placed with another amount, description or metadata, or has ended`);
    spec
      .given([funded, held])
      .when(hold({ holdId: 'other', amount: 61 }))
      .thenThrows('INSUFFICIENT_AVAILABLE_BALANCE', { balance: 100, held: 40, available: 60, requested: 61 }, 'the available balance 60 is less than the 61 tokens requested');
  });

  it('tells the client why a settle or a release is refused', () => {
    spec.given([funded, held]).when(settle(41)).thenThrows('SETTLE_EXCEEDS_HOLD', { holdId, held: 40, requested: 41 }, `a settle of 41 exceeds the 40 tokens of hold ${holdId}`);
    spec.given(history([hold(), release()])).when(settle(10)).thenThrows('HOLD_NOT_ACTIVE', { holdId, holdStatus: 'released' }, `hold ${holdId} is released`);
    spec.given([funded]).when(release()).thenThrows('HOLD_NOT_FOUND', { holdId }, `hold ${holdId} is not active on this account and has not ended recently`);
  });
});

describe('holds: usage draws on the available balance only', () => {
  it('refuses usage of held tokens with INSUFFICIENT_AVAILABLE_BALANCE, and above the balance with INSUFFICIENT_BALANCE', () => {
    spec.given([funded, held]).when(use(61)).thenThrows('INSUFFICIENT_AVAILABLE_BALANCE', { balance: 100, held: 40, available: 60, requested: 61 });
    // Either refusal counts `available` alike, as the balance read model does: less the held tokens.
    spec.given([funded, held]).when(use(101)).thenThrows('INSUFFICIENT_BALANCE', { balance: 100, held: 40, available: 60, requested: 101 });
    spec
      .given([funded, held])
      .when(use(60))
      .then([{ type: 'TokensUsed', data: { userId, transactionId: 'tx-use', amount: 60, description: null, balanceAfter: 40, occurredAt: now.toISOString(), draws: [{ lotId, amount: 60 }], heldAfter: 40 } }]);
  });
});

describe('holds: SettleHold', () => {
  it('debits the actual cost as a usage linked to the hold and releases the rest, in one event', () => {
    spec
      .given([funded, held])
      .when(settle(25, after(60), 'Completion: 25 tokens'))
      .then([
        {
          type: 'HoldSettled',
          data: {
            userId,
            holdId,
            amount: 40,
            settledAmount: 25,
            releasedAmount: 15,
            transactionId: 'tx-settle',
            description: 'Completion: 25 tokens',
            draws: [{ lotId, amount: 25 }],
            balanceAfter: 75,
            heldAfter: 0,
            occurredAt: after(60).toISOString(),
          },
        },
      ]);
    const state = fold(tokenAccountDecider, tokenAccountDecider.initialState, history([hold(), settle(25, after(60))]));
    expect({ balance: state.balance, held: state.held, remaining: state.lots.get(lotId)?.remaining, reserved: state.lots.get(lotId)?.reserved }).toEqual({ balance: 75, held: 0, remaining: 75, reserved: 0 });
  });

  it('settles the whole hold, with the hold description when none is given', () => {
    const [settled, ...rest] = tokenAccountDecider.decide(settle(40), fold(tokenAccountDecider, tokenAccountDecider.initialState, [funded, held]));
    expect(settled).toMatchObject({ type: 'HoldSettled', data: { settledAmount: 40, releasedAmount: 0, description: 'Completion estimate', balanceAfter: 60, draws: [{ lotId, amount: 40 }] } });
    expect(rest).toEqual([]);
  });

  it('replays a settle written before ADR 0028 (a HoldSettled without draws, then its TokensUsed) to the same state as one written now', () => {
    const written = history([hold(), settle(25, after(60), 'Completion')]);
    const [settledNow] = written.slice(-1) as [HoldSettled];
    const { description, draws, ...kept } = settledNow.data;
    const before: TokenAccountEvent[] = [
      ...written.slice(0, -1),
      { type: 'HoldSettled', data: { ...kept, balanceAfter: 100 } },
      { type: 'TokensUsed', data: { userId, transactionId: 'tx-settle', amount: 25, description: description ?? null, balanceAfter: 75, occurredAt: after(60).toISOString(), draws: draws ?? [], holdId, heldAfter: 0 } },
    ];
    const replayed = fold(tokenAccountDecider, tokenAccountDecider.initialState, before);
    expect(replayed).toEqual(fold(tokenAccountDecider, tokenAccountDecider.initialState, written));
    expect(() => tokenAccountDecider.decide(settle(10), replayed)).toThrow(expect.objectContaining({ code: 'HOLD_NOT_ACTIVE', details: { holdId, holdStatus: 'settled' } }));
  });

  it('fails replay of a settle whose balanceAfter or draws disagree with its debit', () => {
    const written = history([hold(), settle(25, after(60))]);
    const [settledNow] = written.slice(-1) as [HoldSettled];
    const replayWith = (data: Partial<HoldSettled['data']>) => () => fold(tokenAccountDecider, tokenAccountDecider.initialState, [...written.slice(0, -1), { type: 'HoldSettled', data: { ...settledNow.data, ...data } }]);
    expect(replayWith({})).not.toThrow();
    expect(replayWith({ balanceAfter: 100 })).toThrow(LedgerInvariantViolation);
    expect(replayWith({ draws: [{ lotId, amount: 24 }] })).toThrow(LedgerInvariantViolation);
    expect(replayWith({ heldAfter: 40 })).toThrow(LedgerInvariantViolation);
  });

  it('refuses a settle above the held amount, even when the available balance would cover it', () => {
    spec.given([funded, held]).when(settle(41)).thenThrows('SETTLE_EXCEEDS_HOLD', { holdId, held: 40, requested: 41 });
  });

  it.each([0, -1, 2.5])('refuses to settle %p tokens (release the hold instead)', (amount) => {
    spec.given([funded, held]).when(settle(amount)).thenThrows('AMOUNT_OUT_OF_RANGE');
  });

  it('answers HOLD_NOT_ACTIVE with how the hold ended, for a settle or release after a settle, a release or an expiry', () => {
    spec.given(history([hold(), settle(10)])).when(settle(10)).thenThrows('HOLD_NOT_ACTIVE', { holdId, holdStatus: 'settled' });
    spec.given(history([hold(), release()])).when(release()).thenThrows('HOLD_NOT_ACTIVE', { holdId, holdStatus: 'released' });
    spec.given(history([hold(), release()])).when(settle(10)).thenThrows('HOLD_NOT_ACTIVE', { holdId, holdStatus: 'released' });
    const expired = history([hold(), { type: 'ExpireCredits', data: { userId, transactionId: 'tx-job', now: new Date(expiresAt) } }]);
    spec.given(expired).when(settle(10, after(3600))).thenThrows('HOLD_NOT_ACTIVE', { holdId, holdStatus: 'expired' });
  });

  it('answers HOLD_NOT_FOUND for a hold the account never had', () => {
    spec.given([funded]).when(settle(10)).thenThrows('HOLD_NOT_FOUND', { holdId });
    spec.given([funded]).when(release()).thenThrows('HOLD_NOT_FOUND', { holdId });
  });

  it('tells from what the hold list records why an older hold cannot be settled: HOLD_NOT_ACTIVE with how it ended, 404 only for one never had', () => {
    for (const status of ['settled', 'released', 'expired'] as const) {
      expect(holdWithoutActive(holdId, status)).toMatchObject({ code: 'HOLD_NOT_ACTIVE', details: { holdId, holdStatus: status } });
    }
    // Listed active while the decider found no such hold: only a lagging list (EventStoreDB) can say so; nothing to tell.
    expect(holdWithoutActive(holdId, 'active')).toMatchObject({ code: 'HOLD_NOT_FOUND', details: { holdId } });
    expect(holdWithoutActive(holdId, undefined)).toMatchObject({ code: 'HOLD_NOT_FOUND', message: `this account has no hold ${holdId}` });
  });
});

describe('holds: ReleaseHold', () => {
  it('gives the held tokens back to the available balance', () => {
    spec
      .given([funded, held])
      .when(release())
      .then([{ type: 'HoldReleased', data: { userId, holdId, amount: 40, balanceAfter: 100, heldAfter: 0, occurredAt: now.toISOString() } }]);
    const state = fold(tokenAccountDecider, tokenAccountDecider.initialState, history([hold(), release()]));
    expect({ balance: state.balance, held: state.held, reserved: state.lots.get(lotId)?.reserved }).toEqual({ balance: 100, held: 0, reserved: 0 });
  });
});

describe('holds: expiry at the exact instant', () => {
  const expiry = new Date(expiresAt);
  const justBefore = new Date(expiry.getTime() - 1);
  const expired: HoldExpired = { type: 'HoldExpired', data: { userId, holdId, amount: 40, expiresAt, balanceAfter: 100, heldAfter: 0, occurredAt: expiresAt } };

  it('still settles one millisecond before expiresAt', () => {
    const [settled] = tokenAccountDecider.decide(settle(40, justBefore), fold(tokenAccountDecider, tokenAccountDecider.initialState, [funded, held]));
    expect(settled?.type).toBe('HoldSettled');
  });

  it('refuses a settle at expiresAt itself: the hold no longer counts', () => {
    spec.given([funded, held]).when(settle(40, expiry)).thenThrows('HOLD_NOT_ACTIVE', { holdId, holdStatus: 'expired' });
  });

  it('lets usage at expiresAt spend the tokens the hold had set aside, appending the expiry first', () => {
    spec
      .given([funded, held])
      .when(use(100, expiry))
      .then([expired, { type: 'TokensUsed', data: { userId, transactionId: 'tx-use', amount: 100, description: null, balanceAfter: 0, occurredAt: expiresAt, draws: [{ lotId, amount: 100 }], heldAfter: 0 } }]);
    spec.given([funded, held]).when(use(100, justBefore)).thenThrows('INSUFFICIENT_AVAILABLE_BALANCE', { available: 60 });
  });

  it('expires a hold that is due while another is still active, and refuses to settle it', () => {
    const placed = history([hold({ holdId: 'short', amount: 10, ttlSeconds: 60 }), hold({ holdId: 'long', amount: 20, ttlSeconds: 7200 })]);
    const at = after(600);
    const due = tokenAccountDecider.decide({ type: 'ExpireCredits', data: { userId, transactionId: 'tx-job', now: at } }, fold(tokenAccountDecider, tokenAccountDecider.initialState, placed));
    expect(due).toEqual([expect.objectContaining({ type: 'HoldExpired', data: expect.objectContaining({ holdId: 'short', heldAfter: 20 }) as unknown })]);
    spec.given(placed).when({ ...settle(10, at), data: { ...settle(10, at).data, holdId: 'short' } }).thenThrows('HOLD_NOT_ACTIVE', { holdId: 'short', holdStatus: 'expired' });
  });

  it('is recorded by ExpireCredits at or after expiresAt, and not before', () => {
    spec.given([funded, held]).when({ type: 'ExpireCredits', data: { userId, transactionId: 'tx-job', now: expiry } }).then([expired]);
    spec.given([funded, held]).when({ type: 'ExpireCredits', data: { userId, transactionId: 'tx-job', now: justBefore } }).thenNothing();
    spec.given([funded, held, expired]).when({ type: 'ExpireCredits', data: { userId, transactionId: 'tx-job', now: after(7200) } }).thenNothing();
  });
});

describe('holds: the order of expiries due together', () => {
  it('expires the holds due at one instant earliest expiry first, then by hold id, whatever order they were placed in', () => {
    // z expires last; a and b expire together, earlier; all three are due an hour later. Placed in
    // both orders of a and b, so that neither the order of placing nor a comparison of ids that
    // always answers "before" gives the order by id.
    for (const order of [['z', 'b', 'a'], ['z', 'a', 'b']]) {
      const placed = history(order.map((id) => hold({ holdId: id, amount: 1, ttlSeconds: id === 'z' ? 600 : 300 })));
      const due = tokenAccountDecider.decide({ type: 'ExpireCredits', data: { userId, transactionId: 'tx-job', now: after(3600) } }, fold(tokenAccountDecider, tokenAccountDecider.initialState, placed));
      expect(due.map((event) => (event.type === 'HoldExpired' ? event.data.holdId : event.type))).toEqual(['a', 'b', 'z']);
      expect(due.map((event) => (event.type === 'HoldExpired' ? event.data.heldAfter : undefined))).toEqual([2, 1, 0]);
    }
  });
});

describe('holds: bounded state', () => {
  it(`forgets ended holds beyond the newest ${ENDED_HOLDS_REMEMBERED_MAX}, and keeps no ended hold among the active ones`, () => {
    const commands: TokenAccountCommand[] = [];
    for (let index = 0; index <= ENDED_HOLDS_REMEMBERED_MAX; index += 1) commands.push(hold({ holdId: `h-${index}`, amount: 1 }), release(now, `h-${index}`));
    const state = fold(tokenAccountDecider, tokenAccountDecider.initialState, history(commands));
    expect(state.holds.size).toBe(0);
    expect(state.endedHolds.size).toBe(ENDED_HOLDS_REMEMBERED_MAX);
    expect(state.endedHolds.has('h-0')).toBe(false);
    expect(state.endedHolds.get(`h-${ENDED_HOLDS_REMEMBERED_MAX}`)).toBe('released');
    spec.given(history(commands)).when(release(now, 'h-0')).thenThrows('HOLD_NOT_FOUND');
  });

  it('tells apart ended holds whose ids share a lookup hash (hold-329599 and hold-532382 do)', () => {
    const [first, second] = ['hold-329599', 'hold-532382'];
    const ended = history([hold({ holdId: first, amount: 1 }), release(now, first)]);
    spec.given(ended).when(release(now, first)).thenThrows('HOLD_NOT_ACTIVE', { holdId: first, holdStatus: 'released' });
    spec.given(ended).when(release(now, second)).thenThrows('HOLD_NOT_FOUND', { holdId: second });
    const both = history([hold({ holdId: second, amount: 1 }), { ...settle(1), data: { ...settle(1).data, holdId: second } }], ended);
    expect(both.at(-1)).toMatchObject({ type: 'HoldSettled', data: { holdId: second } });
    const state = fold(tokenAccountDecider, tokenAccountDecider.initialState, both);
    expect([state.endedHolds.get(first), state.endedHolds.get(second)]).toEqual(['released', 'settled']);
  });

  it('remembers how holds ended through a snapshot: an ended id is still refused, and how it ended still told', () => {
    const events = history([hold(), settle(5), hold({ holdId: 'second', amount: 10 }), release(now, 'second')]);
    const decoded = tokenAccountSnapshot.decode(JSON.parse(JSON.stringify(tokenAccountSnapshot.encode(fold(tokenAccountDecider, tokenAccountDecider.initialState, events)))));
    expect(decoded.endedHolds.toJS()).toEqual({ [holdId]: 'settled', second: 'released' });
    expect([...decoded.endedHolds.entries()]).toEqual([
      [holdId, 'settled'],
      ['second', 'released'],
    ]);
    spec.given(events).when(hold()).thenThrows('HOLD_ID_REUSED', { holdId });
    expect(() => tokenAccountDecider.decide(hold(), decoded)).toThrow(expect.objectContaining({ code: 'HOLD_ID_REUSED', details: { holdId } }) as LedgerError);
    expect(() => tokenAccountDecider.decide(release(now, 'second'), decoded)).toThrow(expect.objectContaining({ code: 'HOLD_NOT_ACTIVE', details: { holdId: 'second', holdStatus: 'released' } }) as LedgerError);
  });

  it('keeps holds and reservations through a snapshot, and decides alike on the decoded state', () => {
    const events = history([hold(), hold({ holdId: 'second', amount: 10 }), settle(5)]);
    const state = fold(tokenAccountDecider, tokenAccountDecider.initialState, events);
    const decoded = tokenAccountSnapshot.decode(JSON.parse(JSON.stringify(tokenAccountSnapshot.encode(state))));
    expect(decoded.holds.toJS()).toEqual(state.holds.toJS());
    expect(decoded.lots.toJS()).toEqual(state.lots.toJS());
    expect(decoded.endedHolds.toJS()).toEqual(state.endedHolds.toJS());
    expect(tokenAccountSnapshot.agreesWith(decoded, events[events.length - 1] as TokenAccountEvent)).toBe(true);
    const command = use(86);
    expect(() => tokenAccountDecider.decide(command, decoded)).toThrow(expect.objectContaining({ code: 'INSUFFICIENT_AVAILABLE_BALANCE' }) as LedgerError);
    expect(tokenAccountDecider.decide(use(85), decoded)).toEqual(tokenAccountDecider.decide(use(85), state));
  });

  it('rejects a snapshot whose holds do not add up to the held total', () => {
    const state = fold(tokenAccountDecider, tokenAccountDecider.initialState, history([hold()]));
    const encoded = tokenAccountSnapshot.encode(state) as Record<string, unknown>;
    expect(() => tokenAccountSnapshot.decode({ ...encoded, held: 39 })).toThrow('snapshot');
    expect(() => tokenAccountSnapshot.decode({ ...encoded, holds: [] })).toThrow('snapshot');
  });
});

describe('holds: AddTokens still credits while holds are active', () => {
  it('adds a lot and keeps the held total', () => {
    const add: AddTokens = { type: 'AddTokens', data: { userId, paymentId: 'pay-2', amount: 5, description: null, transactionId: 'lot-2', now } };
    const [purchase] = tokenAccountDecider.decide(add, fold(tokenAccountDecider, tokenAccountDecider.initialState, [funded, held]));
    expect(purchase).toMatchObject({ type: 'TokensPurchased', data: { balanceAfter: 105, heldAfter: 40, lot: { lotId: 'lot-2' } } });
  });
});

describe('holds and lots: a corrupt stream fails loudly', () => {
  const replay = (events: readonly TokenAccountEvent[]) => fold(tokenAccountDecider, tokenAccountDecider.initialState, events);

  it.each<[string, TokenAccountEvent]>([
    ['a hold reserving more than its lot holds', { ...held, data: { ...held.data, amount: 101, draws: [{ lotId, amount: 101 }], heldAfter: 101 } }],
    ['a hold from a lot that does not exist', { ...held, data: { ...held.data, draws: [{ lotId: 'nowhere', amount: 40 }] } }],
    ['a hold whose draws do not add up to it', { ...held, data: { ...held.data, draws: [{ lotId, amount: 39 }] } }],
    ['a hold recording the wrong held total', { ...held, data: { ...held.data, heldAfter: 41 } }],
    ['a usage drawing from a lot without the tokens', { type: 'TokensUsed', data: { userId, transactionId: 't', amount: 101, description: null, balanceAfter: -1, occurredAt: expiresAt, draws: [{ lotId, amount: 101 }], heldAfter: 0 } }],
    ['a usage whose draws do not add up to it', { type: 'TokensUsed', data: { userId, transactionId: 't', amount: 10, description: null, balanceAfter: 90, occurredAt: expiresAt, draws: [{ lotId, amount: 9 }], heldAfter: 0 } }],
    ['the end of a hold never placed', { type: 'HoldReleased', data: { userId, holdId: 'never', amount: 40, balanceAfter: 100, heldAfter: 0, occurredAt: expiresAt } }],
  ])('refuses %s', (_name, event) => {
    expect(() => replay([funded, event])).toThrow(LedgerInvariantViolation);
  });

  it('refuses a usage spending tokens a hold set aside', () => {
    const spent: TokenAccountEvent = { type: 'TokensUsed', data: { userId, transactionId: 't', amount: 61, description: null, balanceAfter: 39, occurredAt: expiresAt, draws: [{ lotId, amount: 61 }], heldAfter: 40 } };
    expect(() => replay([funded, held, spent])).toThrow(LedgerInvariantViolation);
  });
});

describe('holds: metadata', () => {
  const metadata = { model: 'gpt-4o', requestId: 'req-1' };

  it('keeps the caller metadata on the hold, and a settle without its own puts the hold\'s on the usage', () => {
    const placed = history([hold({ metadata })]);
    expect(placed.at(-1)).toEqual({ ...held, data: { ...held.data, metadata } });
    const settled = history([settle(30)], placed);
    expect(settled.at(-1)).toMatchObject({ type: 'HoldSettled', data: { holdId, settledAmount: 30, metadata } });
  });

  it("puts the settle's own metadata on the usage", () => {
    const own = { model: 'gpt-4o-mini', tokens: 812 };
    const settled = history([hold({ metadata }), { ...settle(30), data: { ...settle(30).data, metadata: own } }]);
    expect(settled.at(-1)).toMatchObject({ type: 'HoldSettled', data: { metadata: own } });
  });

  it('writes no metadata member when none was given, so events stay as they were', () => {
    const events = history([hold(), settle(30)]);
    expect(events.slice(1).every((event) => !('metadata' in event.data))).toBe(true);
  });

  it('keeps the hold metadata through a snapshot', () => {
    const state = fold(tokenAccountDecider, tokenAccountDecider.initialState, history([hold({ metadata })]));
    const decoded = tokenAccountSnapshot.decode(JSON.parse(JSON.stringify(tokenAccountSnapshot.encode(state))));
    expect(decoded.holds.get(holdId)?.metadata).toEqual(metadata);
  });

  it('refuses bad metadata on a hold and on a settle with METADATA_INVALID naming field and rule', () => {
    spec.given([funded]).when(hold({ metadata: { nested: { a: 1 } } as never })).thenThrows('METADATA_INVALID', { field: 'metadata.nested', rule: 'metadataValueType' });
    spec.given([funded, held]).when({ ...settle(30), data: { ...settle(30).data, metadata: { '': 1 } } }).thenThrows('METADATA_INVALID', { field: 'metadata', rule: 'metadataKey' });
  });

  it('treats a repeated hold id with other metadata as a different payload (HOLD_ID_REUSED)', () => {
    spec.given([funded, { ...held, data: { ...held.data, metadata } }]).when(hold({ metadata })).then([]);
    spec.given([funded, { ...held, data: { ...held.data, metadata } }]).when(hold({ metadata: { model: 'other' } })).thenThrows('HOLD_ID_REUSED', { holdId });
    spec.given([funded, held]).when(hold({ metadata })).thenThrows('HOLD_ID_REUSED', { holdId });
  });
});

describe('usage: metadata', () => {
  it('stores the caller metadata in TokensUsed', () => {
    const events = history([{ ...use(10), data: { ...use(10).data, metadata: { model: 'gpt-4o', cached: true, tokens: 10 } } }]);
    expect(events.at(-1)).toMatchObject({ type: 'TokensUsed', data: { amount: 10, metadata: { model: 'gpt-4o', cached: true, tokens: 10 } } });
  });

  it('refuses metadata with too many keys before looking at the balance', () => {
    const tooMany = Object.fromEntries(Array.from({ length: 21 }, (_, index) => [`k${index}`, index]));
    spec.given([]).when({ ...use(10), data: { ...use(10).data, metadata: tooMany } }).thenThrows('METADATA_INVALID', { field: 'metadata', rule: 'metadataKeysMax' });
  });
});
