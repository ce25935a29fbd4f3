import type { RecordedEvent } from '@app/event-store';
import type { HoldEvent } from '@app/ledger';
import { projectHoldEvent } from './holds-and-lots.projection.js';

const userId = '00000000-0000-4000-8000-000000000001';
const holdId = '00000000-0000-4000-8000-0000000000cc';
const transactionId = '00000000-0000-4000-8000-0000000000bb';
const expiresAt = '2026-11-24T12:15:00.000Z';
// Recorded an hour after the hold stopped counting: the job ran late, or nothing touched the account.
const recordedLate = '2026-11-24T13:15:00.000Z';

function recorded(event: HoldEvent): RecordedEvent {
  return {
    id: '00000000-0000-4000-8000-0000000000dd',
    type: event.type,
    data: event.data,
    metadata: {},
    streamId: `token-account-${userId}`,
    revision: 3n,
    position: { commit: 10n, prepare: 3n },
    createdAt: new Date(recordedLate),
  };
}

/** The values of the one token_holds update `event` makes: hold id, status, settled amount, usage transaction, ended at. */
function endOf(event: HoldEvent): readonly unknown[] {
  const changes = projectHoldEvent(event, recorded(event));
  expect(changes).toHaveLength(1);
  expect(changes[0]?.text).toContain('UPDATE token_holds');
  return changes[0]?.values ?? [];
}

describe('token_holds: how a hold ends', () => {
  it('ends an expired hold at its expiresAt, when it stopped counting, not when the expiry was recorded', () => {
    const expired: HoldEvent = { type: 'HoldExpired', data: { userId, holdId, amount: 30, expiresAt, balanceAfter: 100, heldAfter: 0, occurredAt: recordedLate } };
    expect(endOf(expired)).toEqual([holdId, 'expired', null, null, expiresAt]);
  });

  it('ends a settled or released hold when the settle or release was decided', () => {
    const at = '2026-11-24T12:10:00.000Z';
    const settled: HoldEvent = {
      type: 'HoldSettled',
      data: { userId, holdId, amount: 30, settledAmount: 20, releasedAmount: 10, transactionId, description: null, draws: [{ lotId: 'lot-1', amount: 20 }], balanceAfter: 80, heldAfter: 0, occurredAt: at },
    };
    const released: HoldEvent = { type: 'HoldReleased', data: { userId, holdId, amount: 30, balanceAfter: 100, heldAfter: 0, occurredAt: at } };
    expect(endOf(settled)).toEqual([holdId, 'settled', 20, transactionId, at]);
    expect(endOf(released)).toEqual([holdId, 'released', null, null, at]);
  });
});
