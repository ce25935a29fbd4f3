import { decideTokenAccountWithState, tokenAccountDecider, type TokenAccountCommand, type TokenAccountState } from '@app/ledger';
import { nextExpiryOf } from './get-balance.query.js';

const userId = '11111111-1111-4111-8111-111111111111';
const now = new Date('2026-12-01T00:00:00.000Z');
const DAY_MS = 86_400_000;
const at = (days: number) => new Date(now.getTime() + days * DAY_MS);

function stateAfter(commands: readonly TokenAccountCommand[]): TokenAccountState {
  return commands.reduce((state, command) => decideTokenAccountWithState(command, state).state, tokenAccountDecider.initialState);
}

/** A package of `tokens` bought and captured, its lot (`lot-<paymentId>`) expiring after `expiresInDays`. */
function bought(paymentId: string, tokens: number, expiresInDays: number | null): TokenAccountCommand[] {
  const lot = { priority: 100, expiresInDays };
  return [
    { type: 'InitiatePayment', data: { userId, paymentId, orderId: `order-${paymentId}`, packageId: 'pack', tokens, amount: 500, currency: 'USD', provider: 'mock', now, expiresAt: at(1), pendingPaymentsMax: 10, lot } },
    { type: 'CapturePayment', data: { userId, paymentId, outcome: { status: 'captured', providerTransactionId: `ch-${paymentId}` }, transactionId: `lot-${paymentId}`, now, lot } },
  ];
}

const hold = (holdId: string, amount: number, ttlSeconds: number): TokenAccountCommand => ({
  type: 'HoldTokens',
  data: { userId, holdId, amount, description: null, ttlSeconds, ttlSecondsMax: 86_400 * 60, transactionId: `tx-${holdId}`, now },
});

describe("the balance's next expiry from the folded state (the read path while an expiry is due and unrecorded)", () => {
  it('is the live lot with an expiry that expires first, with what it has left, ties by lot id, and null when none expires', () => {
    expect(nextExpiryOf(stateAfter(bought('a', 100, null)), now)).toBeNull();
    const state = stateAfter([...bought('b', 100, 30), ...bought('a', 40, 30), ...bought('c', 10, 60)]);
    expect(nextExpiryOf(state, now)).toEqual({ expiresAt: at(30).toISOString(), amount: 40, lotId: 'lot-a' });
  });

  it('leaves out a lot past its expiry that a hold still holds whole (nothing of it expires: token_lots keeps it active until the hold ends)', () => {
    const state = stateAfter([...bought('a', 100, 1), ...bought('b', 50, 30), hold('h', 100, 2 * 86_400)]);
    expect(nextExpiryOf(state, at(0.5))).toEqual({ expiresAt: at(1).toISOString(), amount: 100, lotId: 'lot-a' });
    // At its expiry the held lot stays in the state (remaining 100, all held), and is no longer the next expiry.
    const swept = decideTokenAccountWithState({ type: 'ExpireCredits', data: { userId, transactionId: 'tx-job', now: at(1) } }, state).state;
    expect(swept.lots.get('lot-a')).toMatchObject({ remaining: 100, reserved: 100 });
    expect(nextExpiryOf(swept, at(1))).toEqual({ expiresAt: at(30).toISOString(), amount: 50, lotId: 'lot-b' });
  });

  it('leaves out the lot of a purchase the provider refunded while a hold held part of it (the held part goes to the refund, never expires)', () => {
    const held = stateAfter([...bought('a', 100, 1), ...bought('b', 50, 30), hold('h', 30, 3_600)]);
    const refunded = decideTokenAccountWithState({ type: 'RefundPayment', data: { userId, paymentId: 'a', providerRefundId: 're_a', transactionId: 'tx-refund', now } }, held).state;
    // The held 30 stay in the lot for the refund to take as the hold gives them back.
    expect(refunded.lots.get('lot-a')).toMatchObject({ remaining: 30, reserved: 30 });
    expect(nextExpiryOf(refunded, now)).toEqual({ expiresAt: at(30).toISOString(), amount: 50, lotId: 'lot-b' });
  });

  it("names a refunded purchase's lot once its tokens are free: a lost dispute took the refund's part from another lot, and the hold gave them back", () => {
    const held = stateAfter([...bought('a', 40, 1), ...bought('b', 100, 30), hold('h', 40, 3_600)]);
    const refunded = decideTokenAccountWithState({ type: 'RefundPayment', data: { userId, paymentId: 'a', providerRefundId: 're_a', transactionId: 'tx-refund', now } }, held).state;
    const lost = decideTokenAccountWithState(
      { type: 'RecordDispute', data: { userId, paymentId: 'a', disputeId: 'dp_a', status: 'lost', amount: 500, currency: 'USD', reason: 'fraudulent', transactionId: 'tx-dispute', now } },
      refunded,
    ).state;
    const released = decideTokenAccountWithState({ type: 'ReleaseHold', data: { userId, holdId: 'h', transactionId: 'tx-release', now } }, lost).state;
    expect(released.payments.get('a')?.status).toBe('REFUNDED');
    expect(released.lots.get('lot-a')).toMatchObject({ remaining: 40, reserved: 0 });
    expect(nextExpiryOf(released, now)).toEqual({ expiresAt: at(1).toISOString(), amount: 40, lotId: 'lot-a' });
  });
});
