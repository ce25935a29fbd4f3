import { invariant, LedgerError } from '../ledger.errors.js';
import { DESCRIPTION_LENGTH_MAX, REASON_LENGTH_MAX, TOKEN_AMOUNT_MAX, TOKEN_AMOUNT_MIN, isAdjustmentAmount, isTokenAmount, textLength } from '../ledger.limits.js';
import { assertBalanceFits } from './balance.rules.js';
import type { AddTokens, AdjustTokens, TokenAccountCommand, UseTokens } from './token-account.commands.js';
import type { TokenAccountEvent, TokensAdjusted, TokensPurchased, TokensUsed } from './token-account.events.js';
import { availableBalance, type TokenAccountState } from './token-account.state.js';
import { capturePayment, expirePayment, initiatePayment, refundPayment, requestRefund } from './payment.decide.js';

export function decideTokenAccount(command: TokenAccountCommand, state: TokenAccountState): readonly TokenAccountEvent[] {
  switch (command.type) {
    case 'AddTokens':
      return addTokens(command, state);
    case 'UseTokens':
      return [useTokens(command, state)];
    case 'AdjustTokens':
      return [adjustTokens(command, state)];
    case 'InitiatePayment':
      return initiatePayment(command, state);
    case 'CapturePayment':
      return capturePayment(command, state);
    case 'ExpirePayment':
      return expirePayment(command, state);
    case 'RequestRefund':
      return requestRefund(command, state);
    case 'RefundPayment':
      return refundPayment(command, state);
    default: {
      const unknown: never = command;
      throw new Error(`unknown token account command ${JSON.stringify(unknown)}`);
    }
  }
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
      },
    },
  ];
}

function useTokens({ data }: UseTokens, state: TokenAccountState): TokensUsed {
  assertAmount(data.amount);
  assertDescription(data.description);
  // Tokens of a payment being refunded are reserved: spending them would leave money returned and tokens kept.
  const available = availableBalance(state);
  if (data.amount > available) {
    const reserved = available < state.balance ? ` (${state.balance - available} reserved for refunds)` : '';
    throw new LedgerError('INSUFFICIENT_BALANCE', `the balance ${state.balance}${reserved} is less than the ${data.amount} tokens requested`, {
      balance: state.balance,
      available,
      requested: data.amount,
    });
  }
  return {
    type: 'TokensUsed',
    data: {
      userId: data.userId,
      transactionId: data.transactionId,
      amount: data.amount,
      description: data.description,
      balanceAfter: state.balance - data.amount,
      occurredAt: data.now.toISOString(),
    },
  };
}

/**
 * An admin's correction, either way. A debit may empty the balance but not go below it; a credit
 * respects the same ceiling as a purchase. No id makes it idempotent: a retry is made safe by the
 * request's Idempotency-Key, as for usage.
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
  if (data.amount < 0 && -data.amount > state.balance) {
    throw new LedgerError('ADJUSTMENT_EXCEEDS_BALANCE', `an adjustment of ${data.amount} would take the balance ${state.balance} below zero`, {
      balance: state.balance,
      requested: data.amount,
    });
  }
  assertBalanceFits(state.balance, data.amount);
  return {
    type: 'TokensAdjusted',
    data: {
      userId: data.userId,
      transactionId: data.transactionId,
      amount: data.amount,
      reason: data.reason,
      balanceAfter: state.balance + data.amount,
      occurredAt: data.now.toISOString(),
    },
  };
}

function assertAmount(amount: number, amountMax: number = TOKEN_AMOUNT_MAX): void {
  invariant(isTokenAmount(amountMax), `an amount cap of ${amountMax} is not a token amount`);
  if (!isTokenAmount(amount) || amount > amountMax) {
    throw new LedgerError('AMOUNT_OUT_OF_RANGE', `amount must be an integer from ${TOKEN_AMOUNT_MIN} to ${amountMax}`, {
      field: 'amount',
      amount,
      min: TOKEN_AMOUNT_MIN,
      max: amountMax,
    });
  }
}

function assertDescription(description: string | null): void {
  if (description !== null && textLength(description) > DESCRIPTION_LENGTH_MAX) {
    throw new LedgerError('DESCRIPTION_TOO_LONG', `description must be at most ${DESCRIPTION_LENGTH_MAX} characters`, {
      length: textLength(description),
      max: DESCRIPTION_LENGTH_MAX,
    });
  }
}

function assertReason(reason: string): void {
  if (reason.trim() === '') throw new LedgerError('REASON_REQUIRED', 'an adjustment needs a reason that is not blank', { length: textLength(reason) });
  if (textLength(reason) > REASON_LENGTH_MAX) {
    throw new LedgerError('REASON_TOO_LONG', `reason must be at most ${REASON_LENGTH_MAX} characters`, { length: textLength(reason), max: REASON_LENGTH_MAX });
  }
}
