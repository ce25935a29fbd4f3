import { fold, type Decision } from '../decider.js';
import { invariant, LedgerError } from '../ledger.errors.js';
import { LOT_PRIORITY_DEFAULT, TOKEN_AMOUNT_MAX, isAdjustmentAmount } from '../ledger.limits.js';
import { assertBalanceFits } from './balance.rules.js';
import { sweepExpiries } from './expiry.decide.js';
import { assertLotRoom, grantTokens, holdTokens, releaseHold, settleHold, spendable, voidGrant } from './hold.decide.js';
import type { AddTokens, AdjustTokens, TokenAccountCommand, UseTokens } from './token-account.commands.js';
import type { TokenAccountEvent, TokensAdjusted, TokensPurchased, TokensUsed } from './token-account.events.js';
import { availableBalance, evolveTokenAccount, type TokenAccountState } from './token-account.state.js';
import { assertAmount, assertDescription, assertMetadata, assertReason } from './token-account.rules.js';
import { assertNoShortfall, recordDispute } from './dispute.decide.js';
import { shortfallCovered } from './shortfall.decide.js';
import { capturePayment, expirePayment, failRefund, initiatePayment, refundPayment, requestRefund } from './payment.decide.js';

/**
 * The command's decision, followed by what pays off the shortfall of lost disputes when the decision
 * leaves free tokens (a credit, a hold's end) while there is one (ADR 0024).
 */
export function decideTokenAccount(command: TokenAccountCommand, state: TokenAccountState): readonly TokenAccountEvent[] {
  return decideTokenAccountWithState(command, state).events;
}

/** `decideTokenAccount`'s events with the state after them, which deciding folds anyway (see `Decision`). */
export function decideTokenAccountWithState(command: TokenAccountCommand, state: TokenAccountState): TokenAccountDecision {
  const timed = notBeforeStream(command, state);
  const decided = decideCommand(timed, state);
  if (decided.events.length === 0 || state.shortfall === 0) return decided;
  const covered = shortfallCovered(decided.state, timed.data);
  return { events: [...decided.events, ...covered], state: fold(evolver, decided.state, covered) };
}

export type TokenAccountDecision = Decision<TokenAccountEvent, TokenAccountState>;

/**
 * The command a millisecond after the stream's latest event when its own `now` is earlier: a
 * decision retried after another command appended first, or taken on a clock behind the one that
 * appended. Decided and recorded at that time, so the stream's times never go back, and an auditor's
 * balance as of an instant (the events at or before it, in stream order) leaves out no event of that
 * instant. After, not at: decisions on a clock behind the stream are never timed alike. A refund
 * request is decided after the stream's latest event even on a clock at its time: a refund's failure
 * finds its request by the request's time (`FailRefund.requestedAt`), so a request is never timed
 * with an earlier request of its payment or that request's failure. A payment's expiry, read off the
 * same clock as its `now`, moves with it: the payment keeps its pending lifetime. A `now` that is no
 * time is a caller's fault, refused.
 */
function notBeforeStream(command: TokenAccountCommand, state: TokenAccountState): TokenAccountCommand {
  const ownMs = command.data.now.getTime();
  invariant(Number.isFinite(ownMs), `the ${command.type} command's now is not a time`);
  if (ownMs > state.lastOccurredAtMs || (ownMs === state.lastOccurredAtMs && command.type !== 'RequestRefund')) return command;
  const now = new Date(state.lastOccurredAtMs + 1);
  if (command.type === 'InitiatePayment') return { ...command, data: { ...command.data, now, expiresAt: new Date(command.data.expiresAt.getTime() + now.getTime() - ownMs) } };
  return { ...command, data: { ...command.data, now } } as TokenAccountCommand;
}

const evolver = { evolve: evolveTokenAccount };

function decideCommand(command: TokenAccountCommand, state: TokenAccountState): TokenAccountDecision {
  switch (command.type) {
    case 'AddTokens':
      return withExpiries(command.data, state, (swept) => addTokens(command, swept));
    case 'UseTokens':
      return withExpiries(command.data, state, (swept) => [useTokens(command, swept)]);
    case 'AdjustTokens':
      return withExpiries(command.data, state, (swept) => [adjustTokens(command, swept)]);
    case 'HoldTokens':
      return withExpiries(command.data, state, (swept) => holdTokens(command, swept));
    case 'SettleHold':
      return withExpiries(command.data, state, (swept) => settleHold(command, swept));
    case 'ReleaseHold':
      return withExpiries(command.data, state, (swept) => releaseHold(command, swept));
    case 'GrantTokens':
      return withExpiries(command.data, state, (swept) => grantTokens(command, swept));
    case 'VoidGrant':
      return withExpiries(command.data, state, (swept) => voidGrant(command, swept, state));
    case 'ExpireCredits':
      return sweepExpiries(state, command.data, 'job');
    case 'InitiatePayment':
      return folded(state, initiatePayment(command, state));
    case 'CapturePayment':
      return withExpiries(command.data, state, (swept) => capturePayment(command, swept));
    case 'ExpirePayment':
      return folded(state, expirePayment(command, state));
    case 'RequestRefund':
      return withExpiries(command.data, state, (swept) => requestRefund(command, swept));
    case 'FailRefund':
      // The released reservation may be of a lot past its expiry: it expires in the same append.
      return withExpiries(command.data, state, (swept) => failRefund(command, swept));
    case 'RefundPayment':
      return withExpiries(command.data, state, (swept) => refundPayment(command, swept));
    case 'RecordDispute':
      return withExpiries(command.data, state, (swept) => recordDispute(command, swept));
    default: {
      const unknown: never = command;
      throw new Error(`unknown token account command ${JSON.stringify(unknown)}`);
    }
  }
}

function folded(state: TokenAccountState, events: readonly TokenAccountEvent[]): TokenAccountDecision {
  return { events, state: fold(evolver, state, events) };
}

/**
 * A decision at `now` on the state with the expiries due at `now` applied, appended with them (and
 * with the lot expiries its own events make due: a settle or release can give tokens back to a lot
 * already past its expiry). A decision of nothing (a repeated request) appends nothing.
 */
function withExpiries(
  sweep: { readonly userId: string; readonly now: Date; readonly transactionId: string },
  state: TokenAccountState,
  decide: (swept: TokenAccountState) => readonly TokenAccountEvent[],
): TokenAccountDecision {
  const before = sweepExpiries(state, sweep, 'before');
  const decided = decide(before.state);
  if (decided.length === 0) return { events: [], state };
  const after = sweepExpiries(fold(evolver, before.state, decided), sweep, 'after');
  return { events: [...before.events, ...decided, ...after.events], state: after.state };
}

/** Credits a payment once. Repeating it with the same payload decides nothing; a different payload is refused. */
function addTokens({ data }: AddTokens, state: TokenAccountState): readonly TokensPurchased[] {
  assertAmount(data.amount, data.amountMax);
  assertDescription(data.description);
  const earlier = state.purchases.get(data.paymentId);
  if (earlier !== undefined) {
    if (earlier.amount === data.amount && earlier.description === data.description) return [];
    throw new LedgerError('PAYMENT_ID_REUSED', `payment ${data.paymentId} was already credited with a different amount or description`, {
      paymentId: data.paymentId,
      creditedAmount: earlier.amount,
      requestedAmount: data.amount,
    });
  }
  if (state.payments.has(data.paymentId)) {
    // The id belongs to a provider payment: only its capture may credit it.
    throw new LedgerError('PAYMENT_ID_REUSED', `payment ${data.paymentId} is a provider payment; it is credited by its capture`, {
      paymentId: data.paymentId,
      creditedAmount: null,
      requestedAmount: data.amount,
    });
  }
  assertBalanceFits(state.balance, data.amount);
  assertLotRoom(state);
  return [
    {
      type: 'TokensPurchased',
      data: {
        userId: data.userId,
        transactionId: data.transactionId,
        paymentId: data.paymentId,
        amount: data.amount,
        description: data.description,
        balanceAfter: state.balance + data.amount,
        occurredAt: data.now.toISOString(),
        lot: { lotId: data.transactionId, priority: LOT_PRIORITY_DEFAULT, expiresAt: null },
        heldAfter: state.held,
      },
    },
  ];
}

/**
 * Spends from the available balance (balance less held), drawing the lots in draw-down order.
 * Above the balance: INSUFFICIENT_BALANCE; within it but above what is available:
 * INSUFFICIENT_AVAILABLE_BALANCE.
 */
function useTokens({ data }: UseTokens, state: TokenAccountState): TokensUsed {
  assertAmount(data.amount);
  assertDescription(data.description);
  assertMetadata(data.metadata);
  assertNoShortfall(state);
  // Tokens of a payment being refunded are reserved: spending them would leave money returned and tokens kept.
  const unreserved = availableBalance(state);
  if (data.amount > unreserved) {
    const reserved = unreserved < state.balance ? ` (${state.balance - unreserved} reserved for refunds)` : '';
    throw new LedgerError('INSUFFICIENT_BALANCE', `the balance ${state.balance}${reserved} is less than the ${data.amount} tokens requested`, {
      balance: state.balance,
      held: state.held,
      // What a usage could take now, as INSUFFICIENT_AVAILABLE_BALANCE and the balance read model count it: less held tokens too.
      available: Math.max(0, unreserved - state.held),
      requested: data.amount,
    });
  }
  const draws = spendable(state, data.amount, data.now);
  return {
    type: 'TokensUsed',
    data: {
      userId: data.userId,
      transactionId: data.transactionId,
      amount: data.amount,
      description: data.description,
      balanceAfter: state.balance - data.amount,
      occurredAt: data.now.toISOString(),
      draws,
      heldAfter: state.held,
      ...(data.metadata === null || data.metadata === undefined ? {} : { metadata: data.metadata }),
    },
  };
}

/**
 * An admin's correction, either way. A debit may empty the available balance but not go below it
 * (held tokens stay with their holds); a credit creates a lot, as a purchase does. No id makes it
 * idempotent: a retry is made safe by the request's Idempotency-Key, as for usage.
 */
function adjustTokens({ data }: AdjustTokens, state: TokenAccountState): TokensAdjusted {
  if (!isAdjustmentAmount(data.amount)) {
    throw new LedgerError('AMOUNT_OUT_OF_RANGE', `amount must be a non-zero integer from -${TOKEN_AMOUNT_MAX} to ${TOKEN_AMOUNT_MAX}`, {
      amount: data.amount,
      min: -TOKEN_AMOUNT_MAX,
      max: TOKEN_AMOUNT_MAX,
    });
  }
  assertReason(data.reason);
  const common = { userId: data.userId, transactionId: data.transactionId, amount: data.amount, reason: data.reason, balanceAfter: state.balance + data.amount, occurredAt: data.now.toISOString() };
  if (data.amount < 0) {
    if (-data.amount > state.balance) {
      throw new LedgerError('ADJUSTMENT_EXCEEDS_BALANCE', `an adjustment of ${data.amount} would take the balance ${state.balance} below zero`, {
        balance: state.balance,
        requested: data.amount,
      });
    }
    return { type: 'TokensAdjusted', data: { ...common, draws: spendable(state, -data.amount, data.now), heldAfter: state.held } };
  }
  assertBalanceFits(state.balance, data.amount);
  assertLotRoom(state);
  return { type: 'TokensAdjusted', data: { ...common, lot: { lotId: data.transactionId, priority: LOT_PRIORITY_DEFAULT, expiresAt: null }, heldAfter: state.held } };
}
