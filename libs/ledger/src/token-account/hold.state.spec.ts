import { fold } from '../decider.js';
import { LedgerInvariantViolation } from '../ledger.errors.js';
import { LOT_PRIORITY_DEFAULT } from '../ledger.limits.js';
import { EndedHolds } from './hold.state.js';
import { tokenAccountDecider } from './token-account.decider.js';
import type { TokenAccountEvent } from './token-account.events.js';

describe('holds: the ended holds remembered', () => {
  it('remembers each ended hold once, oldest first, and tells how it ended', () => {
    const ended = EndedHolds.none.with('a', 'settled', 3).with('b', 'released', 3);
    expect([...ended.entries()]).toEqual([
      ['a', 'settled'],
      ['b', 'released'],
    ]);
    expect(ended.size).toBe(2);
    expect([ended.get('a'), ended.get('b'), ended.get('c')]).toEqual(['settled', 'released', undefined]);
    expect([ended.has('a'), ended.has('c')]).toEqual([true, false]);
  });

  it('forgets the oldest beyond the bound', () => {
    const ended = EndedHolds.none.with('a', 'settled', 2).with('b', 'released', 2).with('c', 'expired', 2);
    expect(ended.toJS()).toEqual({ b: 'released', c: 'expired' });
    expect(ended.has('a')).toBe(false);
  });

  it('ends a hold it still remembers in place, the oldest and the newest alike, so the bound counts holds, not ends', () => {
    const ended = EndedHolds.none.with('a', 'released', 3).with('b', 'released', 3).with('a', 'settled', 3).with('b', 'expired', 3);
    expect([...ended.entries()]).toEqual([
      ['a', 'settled'],
      ['b', 'expired'],
    ]);
    expect(ended.size).toBe(2);
    // Two more holds still fit: a repeated end took no place.
    expect(ended.with('c', 'released', 3).with('a', 'expired', 3).toJS()).toEqual({ a: 'expired', b: 'expired', c: 'released' });
  });

  it('reads a snapshot list with a repeated id as one entry in its first place with its last end', () => {
    const ended = EndedHolds.of([
      ['a', 'released'],
      ['b', 'settled'],
      ['a', 'expired'],
    ]);
    expect([...ended.entries()]).toEqual([
      ['a', 'expired'],
      ['b', 'settled'],
    ]);
  });

  it('refuses on replay a hold id placed again while it is remembered ended, as decide refuses it (HOLD_ID_REUSED)', () => {
    const occurredAt = '2026-11-24T11:00:00.000Z';
    const expiresAt = '2026-11-24T12:00:00.000Z';
    const draws = [{ lotId: 'lot-1', amount: 10 }];
    const held = (heldAfter: number): TokenAccountEvent => ({
      type: 'TokensHeld',
      data: { userId: 'u', holdId: 'h', amount: 10, description: null, expiresAt, draws, balanceAfter: 100, heldAfter, occurredAt },
    });
    const events: TokenAccountEvent[] = [
      {
        type: 'TokensPurchased',
        data: { userId: 'u', transactionId: 't', paymentId: 'p', amount: 100, description: null, balanceAfter: 100, occurredAt, lot: { lotId: 'lot-1', priority: LOT_PRIORITY_DEFAULT, expiresAt: null }, heldAfter: 0 },
      },
      held(10),
      { type: 'HoldReleased', data: { userId: 'u', holdId: 'h', amount: 10, balanceAfter: 100, heldAfter: 0, occurredAt } },
    ];
    expect([...fold(tokenAccountDecider, tokenAccountDecider.initialState, events).endedHolds.entries()]).toEqual([['h', 'released']]);
    expect(() => fold(tokenAccountDecider, tokenAccountDecider.initialState, [...events, held(10)])).toThrow(new LedgerInvariantViolation('hold h placed again after it ended'));
  });
});
