import fc from 'fast-check';
import { fold } from '../decider.js';
import { LedgerError } from '../ledger.errors.js';
import { runSteps, stepArbitrary, type Step } from '../testing/random-history.js';
import type { TokenAccountCommand } from './token-account.commands.js';
import { decideTokenAccount, decideTokenAccountWithState } from './token-account.decide.js';
import { tokenAccountDecider } from './token-account.decider.js';
import type { TokenAccountEvent } from './token-account.events.js';
import type { TokenAccountState } from './token-account.state.js';
import { plainState } from '../testing/plain-state.js';

/**
 * `decideTokenAccountWithState` gives the command path the state after the decided events, which it
 * keeps instead of folding them again: that state must be exactly the fold of those events.
 */
const userId = '11111111-1111-4111-8111-111111111111';

/** The decision's state is the fold of its events, and its events are `decideTokenAccount`'s; undefined when the command is refused. */
function checked(command: TokenAccountCommand, state: TokenAccountState): { readonly events: readonly TokenAccountEvent[]; readonly state: TokenAccountState } | undefined {
  let decision;
  try {
    decision = decideTokenAccountWithState(command, state);
  } catch (error) {
    if (error instanceof LedgerError) return undefined;
    throw error;
  }
  expect(decision.events).toEqual(decideTokenAccount(command, state));
  expect(plainState(decision.state)).toEqual(plainState(fold(tokenAccountDecider, state, decision.events)));
  return decision;
}

/** One command of every type on `state` at `now`, each on its own (the payment ones after their initiation). */
function everyCommand(state: TokenAccountState, now: Date): readonly TokenAccountCommand[] {
  const hold = state.holds.first();
  const grant = state.lots.find((lot) => lot.source === 'grant');
  const completed = state.payments.find((payment) => payment.status === 'COMPLETED');
  const purchase = state.purchases.first();
  const id = (name: string) => `${name}-${now.getTime()}`;
  const commands: TokenAccountCommand[] = [
    { type: 'AddTokens', data: { userId, paymentId: id('pay'), amount: 40, description: null, transactionId: id('add'), now } },
    { type: 'UseTokens', data: { userId, amount: 3, description: null, transactionId: id('use'), now } },
    { type: 'AdjustTokens', data: { userId, amount: 5, reason: 'Correction', transactionId: id('adjust-up'), now } },
    { type: 'AdjustTokens', data: { userId, amount: -2, reason: 'Correction', transactionId: id('adjust-down'), now } },
    { type: 'HoldTokens', data: { userId, holdId: id('hold'), amount: 4, description: null, ttlSeconds: 600, ttlSecondsMax: 86_400, transactionId: id('hold-tx'), now } },
    { type: 'GrantTokens', data: { userId, amount: 6, reason: 'Promotion', priority: 10, expiresAt: new Date(now.getTime() + 3_600_000), transactionId: id('grant'), now } },
    { type: 'ExpireCredits', data: { userId, transactionId: id('expire'), now } },
    {
      type: 'InitiatePayment',
      data: { userId, paymentId: id('provider-pay'), orderId: id('order'), packageId: 'pack', tokens: 50, amount: 100, currency: 'USD', provider: 'mock', now, expiresAt: new Date(now.getTime() + 3_600_000), pendingPaymentsMax: 1_000 },
    },
  ];
  if (purchase !== undefined) commands.push({ type: 'AddTokens', data: { userId, paymentId: purchase.paymentId, amount: purchase.amount, description: purchase.description, transactionId: id('again'), now } });
  if (hold !== undefined) {
    commands.push(
      { type: 'HoldTokens', data: { userId, holdId: hold.holdId, amount: hold.amount, description: hold.description, metadata: hold.metadata, ttlSeconds: 600, ttlSecondsMax: 86_400, transactionId: id('hold-again'), now } },
      { type: 'SettleHold', data: { userId, holdId: hold.holdId, amount: Math.max(1, hold.amount - 1), description: null, transactionId: id('settle'), now } },
      { type: 'ReleaseHold', data: { userId, holdId: hold.holdId, transactionId: id('release'), now } },
    );
  }
  if (grant !== undefined) commands.push({ type: 'VoidGrant', data: { userId, lotId: grant.lotId, reason: 'Voided', transactionId: id('void'), now } });
  if (completed !== undefined) {
    commands.push(
      { type: 'RequestRefund', data: { userId, paymentId: completed.paymentId, transactionId: 'tx-refund-request', now } },
      { type: 'RefundPayment', data: { userId, paymentId: completed.paymentId, providerRefundId: id('refund'), transactionId: id('refund-tx'), now } },
      { type: 'RecordDispute', data: { userId, paymentId: completed.paymentId, disputeId: id('dispute'), status: 'lost', amount: 100, currency: 'USD', reason: 'fraudulent', transactionId: id('dispute-tx'), now } },
    );
  }
  return commands;
}

/** Checks every command on `state` at `now`, and the capture and expiry of a payment it initiates; the types it saw accepted. */
function checkEveryCommand(state: TokenAccountState, now: Date): Set<string> {
  const accepted = new Set<string>();
  for (const command of everyCommand(state, now)) {
    const decision = checked(command, state);
    if (decision === undefined) continue;
    accepted.add(command.type);
    if (command.type !== 'InitiatePayment') continue;
    const { paymentId } = command.data;
    const captured = checked({ type: 'CapturePayment', data: { userId, paymentId, outcome: { status: 'captured', providerTransactionId: 'txn' }, transactionId: `capture-${paymentId}`, now, lot: { priority: 100, expiresInDays: 1 } } }, decision.state);
    if (captured !== undefined) accepted.add('CapturePayment');
    if (checked({ type: 'ExpirePayment', data: { userId, paymentId, now } }, decision.state) !== undefined) accepted.add('ExpirePayment');
  }
  return accepted;
}

describe('token account: the state a decision computes', () => {
  it('is the fold of its events for every command type, on random histories, now and after expiries fall due', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(fc.array(stepArbitrary, { minLength: 5, maxLength: 60 }), (steps: readonly Step[]) => {
        const events = runSteps(userId, steps);
        const state = fold(tokenAccountDecider, tokenAccountDecider.initialState, events);
        const last = Date.parse(events[events.length - 1]?.data.occurredAt ?? '2026-06-01T00:00:00.000Z');
        for (const later of [0, 90 * 60_000, 4 * 24 * 3_600_000]) for (const type of checkEveryCommand(state, new Date(last + later))) seen.add(type);
      }),
      { numRuns: 80, seed: 29 },
    );
    // Every command type was accepted somewhere, so none went unchecked.
    expect([...seen].sort()).toEqual(
      ['AddTokens', 'AdjustTokens', 'CapturePayment', 'ExpireCredits', 'ExpirePayment', 'GrantTokens', 'HoldTokens', 'InitiatePayment', 'RecordDispute', 'RefundPayment', 'ReleaseHold', 'RequestRefund', 'SettleHold', 'UseTokens', 'VoidGrant'].sort(),
    );
  });

  it('is the fold of its events when the decision also covers a shortfall', () => {
    const steps: readonly Step[] = [
      { kind: 'package', tokens: 100, expiresInDays: null, priority: 100 },
      { kind: 'use', amount: 100 },
      { kind: 'dispute', pick: 0, status: 'lost' },
    ];
    const state = fold(tokenAccountDecider, tokenAccountDecider.initialState, runSteps(userId, steps));
    expect(state.shortfall).toBe(100);
    const now = new Date('2026-06-01T00:10:00.000Z');
    const decision = checked({ type: 'AddTokens', data: { userId, paymentId: 'pay-cover', amount: 150, description: null, transactionId: 'add-cover', now } }, state);
    expect(decision?.events.map((event) => event.type)).toEqual(['TokensPurchased', 'ShortfallCovered']);
    expect(decision?.state.shortfall).toBe(0);
  });

  it('is the fold of its events with expiries swept before and after the decision', () => {
    const steps: readonly Step[] = [
      { kind: 'grant', amount: 30, priority: 0, ttlMinutes: 30 },
      { kind: 'grant', amount: 5, priority: 200, ttlMinutes: 20 },
      { kind: 'buy', amount: 50 },
      { kind: 'hold', amount: 40, ttlMinutes: 60 },
      { kind: 'tick', minutes: 45 },
    ];
    const state = fold(tokenAccountDecider, tokenAccountDecider.initialState, runSteps(userId, steps));
    const hold = state.holds.first();
    expect(hold?.reservations.length).toBe(2);
    const now = new Date('2026-06-01T00:45:00.000Z');
    const decision = checked({ type: 'ReleaseHold', data: { userId, holdId: hold?.holdId ?? '', transactionId: 'release', now } }, state);
    expect(decision?.events.map((event) => event.type)).toEqual(['LotExpired', 'HoldReleased', 'LotExpired']);
  });
});
