import fc from 'fast-check';
import { fold } from '../decider.js';
import { LEDGER_ERROR_CODES, LedgerError } from '../ledger.errors.js';
import { BALANCE_MAX, TOKEN_AMOUNT_MAX } from '../ledger.limits.js';
import { captureDecision, refundDecision } from './payment.decide.js';
import type { TokenAccountCommand } from './token-account.commands.js';
import { tokenAccountDecider } from './token-account.decider.js';
import type { TokenAccountEvent } from './token-account.events.js';
import { tokenAccountSnapshot } from './token-account.snapshot.js';
import type { TokenAccountState } from './token-account.state.js';

/*
 * Random command sequences, with the clock moving between commands, against the invariants an
 * auditor relies on: the balance is the credits less the debits and never leaves its range, a repeated
 * idempotent command decides nothing, replaying the decided events (as stored, through JSON) gives the
 * same state, and a snapshot decodes to the state the replay gives.
 *
 * Each command type has one row in COMMAND_GENERATORS; a new command added to TokenAccountCommand is
 * a type error here until it has its row.
 */

const userId = '11111111-1111-4111-8111-111111111111';
const start = Date.parse('2026-11-24T12:00:00.000Z');
const MINUTE_MS = 60_000;

/**
 * Small pools, so that sequences repeat ids and collide (direct credits and provider payments share
 * one), and a payment is often taken through its whole lifecycle.
 */
const DIRECT_PAYMENT_IDS = ['direct-1', 'shared-1'] as const;
const PROVIDER_PAYMENT_IDS = ['provider-1', 'shared-1'] as const;
/** The largest package can only be captured on an empty balance: the capture ceiling is tried. */
const PACKAGES = [
  { packageId: 'starter', tokens: 100, amount: 500 },
  { packageId: 'pro', tokens: 1_000, amount: 4_000 },
  { packageId: 'whale', tokens: TOKEN_AMOUNT_MAX, amount: 1 },
] as const;

/** What a step knows when it builds its command: the time, and a transaction id of its own. */
type Clock = { readonly now: Date; readonly transactionId: string };
type CommandType = TokenAccountCommand['type'];
type CommandOf<Type extends CommandType> = Extract<TokenAccountCommand, { readonly type: Type }>;
type CommandGenerator<Type extends CommandType> = {
  /** A command built at the step's time; the same recipe at a later time is the command's retry. */
  readonly recipe: fc.Arbitrary<(clock: Clock) => CommandOf<Type>>;
  /** Whether repeating the command after it decided something must decide nothing. */
  readonly idempotent: boolean;
};

/** Mostly ordinary amounts, sometimes the largest, sometimes one out of range (refused, deciding nothing). */
const tokenAmount = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 1, max: 300 }) },
  { weight: 1, arbitrary: fc.constant(TOKEN_AMOUNT_MAX) },
  { weight: 1, arbitrary: fc.constantFrom(0, -1, 1.5, TOKEN_AMOUNT_MAX + 1) },
);

const COMMAND_GENERATORS: { readonly [Type in CommandType]: CommandGenerator<Type> } = {
  AddTokens: {
    idempotent: true,
    recipe: fc
      .record({ paymentId: fc.constantFrom(...DIRECT_PAYMENT_IDS), amount: tokenAmount, description: fc.constantFrom(null, 'Starter pack') })
      .map((data) => (clock) => ({ type: 'AddTokens', data: { ...data, userId, transactionId: clock.transactionId, now: clock.now } })),
  },
  UseTokens: {
    idempotent: false,
    recipe: fc
      .record({ amount: tokenAmount, description: fc.constantFrom(null, 'Chat completion') })
      .map((data) => (clock) => ({ type: 'UseTokens', data: { ...data, userId, transactionId: clock.transactionId, now: clock.now } })),
  },
  AdjustTokens: {
    idempotent: false,
    recipe: fc
      .record({ amount: fc.oneof(fc.integer({ min: -300, max: 300 }), fc.constant(-TOKEN_AMOUNT_MAX)), reason: fc.constantFrom('Goodwill', ' ') })
      .map((data) => (clock) => ({ type: 'AdjustTokens', data: { ...data, userId, transactionId: clock.transactionId, now: clock.now } })),
  },
  InitiatePayment: {
    idempotent: true,
    recipe: fc
      .record({ paymentId: fc.constantFrom(...PROVIDER_PAYMENT_IDS), product: fc.constantFrom(...PACKAGES), otherOrder: fc.boolean(), validForMs: fc.integer({ min: 1, max: 60 * MINUTE_MS }) })
      .map(({ paymentId, product, otherOrder, validForMs }) => (clock) => ({
        type: 'InitiatePayment',
        data: {
          userId,
          paymentId,
          orderId: otherOrder ? `order-other-${paymentId}` : `order-${paymentId}`,
          ...product,
          currency: 'USD',
          provider: 'mock',
          now: clock.now,
          expiresAt: new Date(clock.now.getTime() + validForMs),
        },
      })),
  },
  CapturePayment: {
    idempotent: true,
    recipe: fc
      .record({
        paymentId: fc.constantFrom(...PROVIDER_PAYMENT_IDS),
        outcome: fc.constantFrom({ status: 'captured', providerTransactionId: 'capture-1' } as const, { status: 'declined', reason: 'card_declined' } as const),
      })
      .map((data) => (clock) => ({ type: 'CapturePayment', data: { ...data, userId, transactionId: clock.transactionId, now: clock.now } })),
  },
  ExpirePayment: {
    idempotent: true,
    recipe: fc.constantFrom(...PROVIDER_PAYMENT_IDS).map((paymentId) => (clock) => ({ type: 'ExpirePayment', data: { userId, paymentId, now: clock.now } })),
  },
  RefundPayment: {
    idempotent: true,
    recipe: fc
      .constantFrom(...PROVIDER_PAYMENT_IDS)
      .map((paymentId) => (clock) => ({ type: 'RefundPayment', data: { userId, paymentId, providerRefundId: 'refund-1', transactionId: clock.transactionId, now: clock.now } })),
  },
};

type Step =
  | { readonly kind: 'advance'; readonly ms: number }
  | { readonly kind: 'command'; readonly recipe: (clock: Clock) => TokenAccountCommand; readonly idempotent: boolean };

const generators: readonly { readonly recipe: fc.Arbitrary<(clock: Clock) => TokenAccountCommand>; readonly idempotent: boolean }[] = Object.values(COMMAND_GENERATORS);
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.integer({ min: 1, max: 90 * MINUTE_MS }).map((ms): Step => ({ kind: 'advance', ms })),
  ...generators.map(({ recipe, idempotent }) => recipe.map((build): Step => ({ kind: 'command', recipe: build, idempotent }))),
);
const sequences = fc.array(step, { minLength: 1, maxLength: 40 });

function decided(command: TokenAccountCommand, state: TokenAccountState): readonly TokenAccountEvent[] | LedgerError {
  try {
    return tokenAccountDecider.decide(command, state);
  } catch (error) {
    // Only an expected rejection is an answer; anything else fails the property.
    if (error instanceof LedgerError) return error;
    throw error;
  }
}

function replay(events: readonly TokenAccountEvent[]): TokenAccountState {
  return fold(tokenAccountDecider, tokenAccountDecider.initialState, events);
}

/** The state as plain data, to compare two states whatever their maps' insertion order. */
function plain(state: TokenAccountState) {
  return { balance: state.balance, purchases: state.purchases.toJS(), payments: state.payments.toJS() };
}

/** Signed tokens an event moves: credits positive, debits negative, payment lifecycle events none. */
function tokensMoved(event: TokenAccountEvent): number {
  switch (event.type) {
    case 'TokensPurchased':
    case 'TokensAdjusted':
      return event.data.amount;
    case 'TokensUsed':
    case 'TokensRefunded':
      return -event.data.amount;
    case 'PaymentInitiated':
    case 'PaymentCaptured':
    case 'PaymentFailed':
    case 'PaymentExpired':
    case 'PaymentRefunded':
      return 0;
  }
}

function expectInvariants(state: TokenAccountState, history: readonly TokenAccountEvent[]): void {
  expect(state.balance).toBe(history.reduce((sum, event) => sum + tokensMoved(event), 0));
  expect(state.balance).toBeGreaterThanOrEqual(0);
  expect(state.balance).toBeLessThanOrEqual(BALANCE_MAX);

  const credits = history.filter((event) => event.type === 'TokensPurchased');
  expect(new Set(credits.map((event) => event.data.paymentId)).size).toBe(credits.length);
  for (const payment of state.payments.values()) {
    // A provider payment's tokens are credited exactly once, when it is captured, and only then.
    const credited = credits.filter((event) => event.data.paymentId === payment.paymentId).map((event) => event.data.amount);
    expect(credited).toEqual(payment.status === 'COMPLETED' || payment.status === 'REFUNDED' ? [payment.tokens] : []);
    const takenBack = history.filter((event) => event.type === 'TokensRefunded' && event.data.paymentId === payment.paymentId).reduce((sum, event) => sum - tokensMoved(event), 0);
    expect(takenBack).toBe(payment.tokensDebited ?? 0);
  }

  // Replaying what would be stored gives the same state; so does the snapshot, which agrees with its last event.
  const stored = JSON.parse(JSON.stringify(history)) as TokenAccountEvent[];
  expect(plain(replay(stored))).toEqual(plain(state));
  const snapshot = tokenAccountSnapshot.decode(JSON.parse(JSON.stringify(tokenAccountSnapshot.encode(state))));
  expect(plain(snapshot)).toEqual(plain(state));
  const last = stored.at(-1);
  if (last !== undefined) expect(tokenAccountSnapshot.agreesWith(snapshot, last)).toBe(true);
}

/**
 * What the handlers ask before calling the provider agrees with what the decider then records: a
 * capture allowed is credited, a refund allowed takes all the payment's tokens back, 'done' decides nothing.
 */
function expectGatesAgree(command: TokenAccountCommand, state: TokenAccountState, outcome: readonly TokenAccountEvent[] | LedgerError): void {
  if (command.type === 'CapturePayment' && command.data.outcome.status === 'captured' && state.payments.has(command.data.paymentId)) {
    const gate = gateOf(() => captureDecision(state, command.data.paymentId, command.data.now));
    if (gate === 'done') expect(outcome).toEqual([]);
    if (gate === 'capture') expect(Array.isArray(outcome) ? outcome.map((event) => event.type) : outcome).toEqual(['PaymentCaptured', 'TokensPurchased']);
  }
  if (command.type === 'RefundPayment' && state.payments.has(command.data.paymentId)) {
    const gate = gateOf(() => refundDecision(state, command.data.paymentId));
    const tokens = state.payments.get(command.data.paymentId)?.tokens;
    if (gate === 'done') expect(outcome).toEqual([]);
    if (gate === 'refund') expect(Array.isArray(outcome) ? outcome.map(tokensMoved) : outcome).toEqual([0, -(tokens ?? 0)]);
  }
}

function gateOf<Gate extends string>(ask: () => Gate): Gate | 'refused' {
  try {
    return ask();
  } catch (error) {
    if (error instanceof LedgerError) return 'refused';
    throw error;
  }
}

/** Runs the steps, checking every property on the way; returns what was decided and what was refused. */
function run(steps: readonly Step[]): { readonly history: readonly TokenAccountEvent[]; readonly refused: readonly string[] } {
  const refused: string[] = [];
  let now = start;
  let state = tokenAccountDecider.initialState;
  const history: TokenAccountEvent[] = [];
  steps.forEach((next, index) => {
    if (next.kind === 'advance') {
      now += next.ms;
      return;
    }
    const command = next.recipe({ now: new Date(now), transactionId: `tx-${index}` });
    const outcome = decided(command, state);
    expectGatesAgree(command, state, outcome);
    if (outcome instanceof LedgerError) {
      expect(LEDGER_ERROR_CODES).toContain(outcome.code);
      refused.push(outcome.code);
      return;
    }
    // evolve re-checks every event (balanceAfter, payment status moves); a violation throws here.
    state = fold(tokenAccountDecider, state, outcome);
    history.push(...outcome);
    expectInvariants(state, history);
    if (next.idempotent && outcome.length > 0) {
      const retry = next.recipe({ now: new Date(now + 1_000), transactionId: `retry-${index}` });
      expect(decided(retry, state)).toEqual([]);
    }
  });
  return { history, refused };
}

describe('token account: properties of random command sequences', () => {
  it('keeps the balance equal to credits less debits, in range, replayable and snapshot-safe; repeats decide nothing', () => {
    fc.assert(
      fc.property(sequences, (steps) => {
        run(steps);
      }),
      { numRuns: 100 },
    );
  });

  it('reaches every event type and the rejections that guard money, so the properties are tried on them', () => {
    const events = new Set<string>();
    const refusals = new Set<string>();
    for (const steps of fc.sample(sequences, { numRuns: 100, seed: 17 })) {
      const { history, refused } = run(steps);
      for (const event of history) events.add(event.type);
      for (const code of refused) refusals.add(code);
    }
    expect([...events].sort()).toEqual(
      ['PaymentCaptured', 'PaymentExpired', 'PaymentFailed', 'PaymentInitiated', 'PaymentRefunded', 'TokensAdjusted', 'TokensPurchased', 'TokensRefunded', 'TokensUsed'].sort(),
    );
    expect([...refusals]).toEqual(
      expect.arrayContaining(['AMOUNT_OUT_OF_RANGE', 'INSUFFICIENT_BALANCE', 'BALANCE_OUT_OF_RANGE', 'PAYMENT_ID_REUSED', 'PAYMENT_NOT_FOUND', 'PAYMENT_NOT_CAPTURED', 'ADJUSTMENT_EXCEEDS_BALANCE', 'REASON_REQUIRED']),
    );
  });
});
