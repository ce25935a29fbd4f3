import fc from 'fast-check';
import { fold } from '../decider.js';
import { LedgerError } from '../ledger.errors.js';
import type { Metadata } from '../metadata.js';
import { tokenAccountDecider } from '../token-account/token-account.decider.js';
import type { TokenAccountCommand } from '../token-account/token-account.commands.js';
import type { TokenAccountEvent } from '../token-account/token-account.events.js';
import type { TokenAccountState } from '../token-account/token-account.state.js';

/**
 * Random sequences of purchases (direct and through a provider payment), grants, holds, settles,
 * releases, usages, adjustments, voids, refunds, disputes (opened, won, lost: chargebacks and
 * shortfalls), expiry runs, clock advances and commands decided on a clock behind (a retried
 * decision, a slower process). Every command is
 * decided by the real decider (refusals are part of the sequence); after each step the folded state
 * must keep the ledger's equations.
 */
const start = Date.parse('2026-06-01T00:00:00.000Z');

export type Step =
  | { readonly kind: 'buy'; readonly amount: number }
  | { readonly kind: 'package'; readonly tokens: number; readonly expiresInDays: number | null; readonly priority: number }
  | { readonly kind: 'grant'; readonly amount: number; readonly priority: number; readonly ttlMinutes: number | null }
  | { readonly kind: 'hold'; readonly amount: number; readonly ttlMinutes: number }
  | { readonly kind: 'settle'; readonly pick: number; readonly share: number }
  | { readonly kind: 'release'; readonly pick: number }
  | { readonly kind: 'use'; readonly amount: number }
  | { readonly kind: 'adjust'; readonly amount: number }
  | { readonly kind: 'void'; readonly pick: number }
  | { readonly kind: 'refund'; readonly pick: number }
  | { readonly kind: 'dispute'; readonly pick: number; readonly status: 'open' | 'won' | 'lost' }
  | { readonly kind: 'expire' }
  | { readonly kind: 'tick'; readonly minutes: number }
  /** The next step's command reads a clock `minutes` behind. */
  | { readonly kind: 'late'; readonly minutes: number };

const amount = fc.integer({ min: 1, max: 400 });
export const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('buy' as const), amount }),
  fc.record({ kind: fc.constant('package' as const), tokens: amount, expiresInDays: fc.option(fc.integer({ min: 1, max: 3 })), priority: fc.integer({ min: 0, max: 200 }) }),
  fc.record({ kind: fc.constant('grant' as const), amount, priority: fc.integer({ min: 0, max: 200 }), ttlMinutes: fc.option(fc.integer({ min: 1, max: 600 })) }),
  fc.record({ kind: fc.constant('hold' as const), amount, ttlMinutes: fc.integer({ min: 1, max: 120 }) }),
  fc.record({ kind: fc.constant('settle' as const), pick: fc.nat(), share: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('use' as const), amount }),
  fc.record({ kind: fc.constant('adjust' as const), amount: fc.integer({ min: -300, max: 300 }).filter((value) => value !== 0) }),
  fc.record({ kind: fc.constant('void' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('refund' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('dispute' as const), pick: fc.nat(), status: fc.constantFrom('open' as const, 'won' as const, 'lost' as const, 'lost' as const) }),
  fc.constant({ kind: 'expire' as const }),
  fc.record({ kind: fc.constant('tick' as const), minutes: fc.integer({ min: 1, max: 24 * 60 }) }),
  fc.record({ kind: fc.constant('late' as const), minutes: fc.integer({ min: 1, max: 120 }) }),
);

/** Runs `steps` through the decider: each command's events, or none when it is refused with a LedgerError; `onStep` after each accepted one. */
export function runSteps(
  userId: string,
  steps: readonly Step[],
  onStep: (state: TokenAccountState, events: readonly TokenAccountEvent[]) => void = () => undefined,
  /** New ids (payments, transactions, holds); by default readable ones numbered in order. */
  newId?: () => string,
): TokenAccountEvent[] {
  const events: TokenAccountEvent[] = [];
  let state = tokenAccountDecider.initialState;
  let clock = start;
  let sequence = 0;
  const id = (prefix: string) => newId?.() ?? `${prefix}-${String((sequence += 1)).padStart(6, '0')}`;
  const decide = (command: TokenAccountCommand) => {
    try {
      const decided = tokenAccountDecider.decide(command, state);
      state = fold(tokenAccountDecider, state, decided);
      events.push(...decided);
      onStep(state, events);
    } catch (error) {
      if (!(error instanceof LedgerError)) throw error;
    }
  };
  let lateMs = 0;
  for (const step of steps) {
    const now = new Date(clock - lateMs);
    lateMs = 0;
    const pickOf = <T>(items: readonly T[], pick: number) => (items.length === 0 ? undefined : items[pick % items.length]);
    switch (step.kind) {
      case 'buy':
        decide({ type: 'AddTokens', data: { userId, paymentId: id('pay'), amount: step.amount, description: null, transactionId: id('lot'), now } });
        break;
      case 'package': {
        const paymentId = id('pay');
        decide({
          type: 'InitiatePayment',
          data: { userId, paymentId, orderId: id('order'), packageId: 'pack', tokens: step.tokens, amount: 100, currency: 'USD', provider: 'mock', now, expiresAt: new Date(clock + 3_600_000), pendingPaymentsMax: 1_000 },
        });
        const lot = { priority: step.priority, expiresInDays: step.expiresInDays };
        decide({ type: 'CapturePayment', data: { userId, paymentId, outcome: { status: 'captured', providerTransactionId: id('txn') }, transactionId: id('lot'), now, lot } });
        break;
      }
      case 'grant': {
        const expiresAt = step.ttlMinutes === null ? null : new Date(clock + step.ttlMinutes * 60_000);
        decide({ type: 'GrantTokens', data: { userId, amount: step.amount, reason: 'Promotion', priority: step.priority, expiresAt, transactionId: id('lot'), now } });
        break;
      }
      case 'hold':
        decide({ type: 'HoldTokens', data: { userId, holdId: id('hold'), amount: step.amount, description: null, metadata: metadataOf(step.amount, 2), ttlSeconds: step.ttlMinutes * 60, ttlSecondsMax: 86_400, transactionId: id('tx'), now } });
        break;
      case 'settle': {
        const hold = pickOf([...state.holds.values()], step.pick);
        if (hold !== undefined) {
          const settled = Math.max(1, Math.round(hold.amount * step.share));
          decide({ type: 'SettleHold', data: { userId, holdId: hold.holdId, amount: settled, description: null, metadata: metadataOf(settled, 3), transactionId: id('tx'), now } });
        }
        break;
      }
      case 'release': {
        const hold = pickOf([...state.holds.values()], step.pick);
        if (hold !== undefined) decide({ type: 'ReleaseHold', data: { userId, holdId: hold.holdId, transactionId: id('tx'), now } });
        break;
      }
      case 'use':
        decide({ type: 'UseTokens', data: { userId, amount: step.amount, description: null, metadata: metadataOf(step.amount, 2), transactionId: id('tx'), now } });
        break;
      case 'adjust':
        decide({ type: 'AdjustTokens', data: { userId, amount: step.amount, reason: 'Correction', transactionId: id('lot'), now } });
        break;
      case 'void': {
        const grant = pickOf([...state.lots.values()].filter((lot) => lot.source === 'grant'), step.pick);
        if (grant !== undefined) decide({ type: 'VoidGrant', data: { userId, lotId: grant.lotId, reason: 'Voided', transactionId: id('tx'), now } });
        break;
      }
      case 'refund': {
        // A refund asked for (its tokens reserved in the purchase's lot), then made at the provider on
        // every other pick, or failed there on every fourth (the request ends, the reservation with it);
        // or, for a payment already pending, made or failed; or made by the provider unasked.
        const payment = pickOf([...state.payments.values()].filter((candidate) => candidate.status === 'COMPLETED' || candidate.status === 'REFUND_PENDING'), step.pick);
        if (payment === undefined) break;
        if (payment.status === 'COMPLETED' && step.pick % 3 !== 2) decide({ type: 'RequestRefund', data: { userId, paymentId: payment.paymentId, transactionId: id('tx'), now } });
        if (step.pick % 2 === 1) decide({ type: 'RefundPayment', data: { userId, paymentId: payment.paymentId, providerRefundId: id('refund'), transactionId: id('tx'), now } });
        else if (step.pick % 4 === 0) {
          // For the request now pending, as the refund flow and the reconciler ask (state.payments: after the request above).
          const requestedAt = state.payments.get(payment.paymentId)?.updatedAt ?? payment.updatedAt;
          decide({ type: 'FailRefund', data: { userId, paymentId: payment.paymentId, requestedAt, providerRefundId: id('refund'), reason: 'failed: lost_or_stolen_card', transactionId: id('tx'), now } });
        }
        break;
      }
      case 'dispute': {
        // One dispute per payment, reported open, won or lost (a report after its close decides nothing).
        const payment = pickOf([...state.payments.values()].filter((candidate) => candidate.status !== 'PENDING' && candidate.status !== 'FAILED'), step.pick);
        if (payment === undefined) break;
        const disputeId = `dp-${payment.paymentId}`;
        decide({ type: 'RecordDispute', data: { userId, paymentId: payment.paymentId, disputeId, status: step.status, amount: 100, currency: 'USD', reason: 'fraudulent', transactionId: id('tx'), now } });
        break;
      }
      case 'expire':
        decide({ type: 'ExpireCredits', data: { userId, transactionId: id('tx'), now } });
        break;
      case 'tick':
        clock += step.minutes * 60_000;
        break;
      case 'late':
        lateMs = step.minutes * 60_000;
        break;
    }
  }
  return events;
}

/**
 * Caller metadata on some holds, settles and usages (a settle without takes its hold's), chosen from
 * the amount so that it draws nothing from the random sequence: histories stay what their seeds made.
 */
function metadataOf(amount: number, every: number): Metadata | null {
  return amount % every === 0 ? { model: `model-${amount % 5}`, tokens: amount, cached: amount % 4 === 0 } : null;
}
