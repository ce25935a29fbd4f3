import { Map as ImmutableMap } from 'immutable';
import { invariant, LedgerInvariantViolation } from '../ledger.errors.js';
import { BALANCE_MAX } from '../ledger.limits.js';
import type { TokenAccountEvent, TokensPurchased } from './token-account.events.js';
import type { Payment } from './payment.state.js';

export type Purchase = TokensPurchased['data'];

export type TokenAccountState = {
  readonly balance: number;
  /**
   * Every credited payment by its id: the source of exact idempotency for `AddTokens`. A persistent
   * map, so that folding a long stream stays linear and earlier states are never changed.
   */
  readonly purchases: ImmutableMap<string, Purchase>;
  /** Every payment initiated on this account by its id, with its status (persistent too). */
  readonly payments: ImmutableMap<string, Payment>;
  /** Tokens of REFUND_PENDING payments: part of the balance that usage may not spend. */
  readonly reservedForRefunds: number;
};

export const initialTokenAccountState: TokenAccountState = { balance: 0, purchases: ImmutableMap(), payments: ImmutableMap(), reservedForRefunds: 0 };

/** What usage may spend: the balance less the tokens reserved for refunds in progress (never below 0). */
export function availableBalance(state: TokenAccountState): number {
  return Math.max(0, state.balance - state.reservedForRefunds);
}

export function evolveTokenAccount(state: TokenAccountState, event: TokenAccountEvent): TokenAccountState {
  switch (event.type) {
    case 'TokensPurchased': {
      const balance = state.balance + event.data.amount;
      invariant(balance <= BALANCE_MAX, `balance ${balance} exceeds the maximum`);
      invariant(balance === event.data.balanceAfter, `purchase records balanceAfter ${event.data.balanceAfter}, replay gives ${balance}`);
      invariant(!state.purchases.has(event.data.paymentId), `payment ${event.data.paymentId} credited twice`);
      return { ...state, balance, purchases: state.purchases.set(event.data.paymentId, event.data) };
    }
    case 'TokensUsed': {
      const balance = state.balance - event.data.amount;
      invariant(balance >= 0, `usage of ${event.data.amount} drives the balance ${state.balance} below zero`);
      invariant(balance === event.data.balanceAfter, `usage records balanceAfter ${event.data.balanceAfter}, replay gives ${balance}`);
      return { ...state, balance };
    }
    case 'TokensRefunded': {
      const balance = state.balance - event.data.amount;
      invariant(balance >= 0, `refund of ${event.data.amount} drives the balance ${state.balance} below zero`);
      invariant(balance === event.data.balanceAfter, `refund records balanceAfter ${event.data.balanceAfter}, replay gives ${balance}`);
      invariant(state.payments.get(event.data.paymentId)?.status === 'REFUNDED', `tokens refunded for payment ${event.data.paymentId} that is not refunded`);
      return { ...state, balance };
    }
    case 'TokensAdjusted': {
      const balance = state.balance + event.data.amount;
      invariant(event.data.amount !== 0, 'an adjustment of 0 tokens');
      invariant(balance >= 0 && balance <= BALANCE_MAX, `adjustment of ${event.data.amount} drives the balance ${state.balance} out of range`);
      invariant(balance === event.data.balanceAfter, `adjustment records balanceAfter ${event.data.balanceAfter}, replay gives ${balance}`);
      return { ...state, balance };
    }
    case 'PaymentInitiated': {
      invariant(!state.payments.has(event.data.paymentId), `payment ${event.data.paymentId} initiated twice`);
      const payment: Payment = {
        ...event.data,
        status: 'PENDING',
        failure: null,
        failureReason: null,
        providerTransactionId: null,
        providerRefundId: null,
        tokensDebited: null,
        updatedAt: event.data.occurredAt,
      };
      return { ...state, payments: state.payments.set(event.data.paymentId, payment) };
    }
    case 'PaymentCaptured': {
      const payment = paymentOf(state, event.data.paymentId);
      // A FAILED payment may still be captured: the provider took the money (a capture racing its expiry).
      invariant(payment.status === 'PENDING' || payment.status === 'FAILED', `payment ${payment.paymentId} captured while ${payment.status}`);
      return withPayment(state, { ...payment, status: 'COMPLETED', providerTransactionId: event.data.providerTransactionId, updatedAt: event.data.occurredAt });
    }
    case 'PaymentFailed':
    case 'PaymentExpired': {
      const payment = paymentOf(state, event.data.paymentId);
      invariant(payment.status === 'PENDING', `payment ${payment.paymentId} failed while ${payment.status}`);
      const failure = event.type === 'PaymentFailed' ? 'declined' : 'expired';
      return withPayment(state, { ...payment, status: 'FAILED', failure, failureReason: event.data.reason, updatedAt: event.data.occurredAt });
    }
    case 'PaymentRefundRequested': {
      const payment = paymentOf(state, event.data.paymentId);
      invariant(payment.status === 'COMPLETED', `refund of payment ${payment.paymentId} requested while ${payment.status}`);
      invariant(event.data.tokens === payment.tokens, `refund request of payment ${payment.paymentId} reserves ${event.data.tokens} tokens, not its ${payment.tokens}`);
      const reserved = withPayment(state, { ...payment, status: 'REFUND_PENDING', updatedAt: event.data.occurredAt });
      return { ...reserved, reservedForRefunds: state.reservedForRefunds + payment.tokens };
    }
    case 'PaymentRefunded': {
      const payment = paymentOf(state, event.data.paymentId);
      invariant(payment.status === 'COMPLETED' || payment.status === 'REFUND_PENDING', `payment ${payment.paymentId} refunded while ${payment.status}`);
      invariant(event.data.tokensDebited >= 0 && event.data.tokensDebited <= payment.tokens, `refund of payment ${payment.paymentId} debits ${event.data.tokensDebited} tokens`);
      const refunded = withPayment(state, {
        ...payment,
        status: 'REFUNDED',
        providerRefundId: event.data.providerRefundId,
        tokensDebited: event.data.tokensDebited,
        updatedAt: event.data.occurredAt,
      });
      // The reservation ends with the refund; the tokens leave with TokensRefunded, which follows.
      return payment.status === 'REFUND_PENDING' ? { ...refunded, reservedForRefunds: state.reservedForRefunds - payment.tokens } : refunded;
    }
    default: {
      const unknown: never = event;
      throw new LedgerInvariantViolation(`unknown token account event ${JSON.stringify(unknown)}`);
    }
  }
}

function paymentOf(state: TokenAccountState, paymentId: string): Payment {
  const payment = state.payments.get(paymentId);
  invariant(payment !== undefined, `event for payment ${paymentId} that was never initiated`);
  return payment;
}

function withPayment(state: TokenAccountState, payment: Payment): TokenAccountState {
  return { ...state, payments: state.payments.set(payment.paymentId, payment) };
}
