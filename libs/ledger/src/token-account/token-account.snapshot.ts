import { Map as ImmutableMap } from 'immutable';
import { SnapshotRejected, type SnapshotSchema } from '../snapshot.js';
import { BALANCE_MAX, CURRENCY_PATTERN, DESCRIPTION_LENGTH_MAX, isMoneyAmount, isTokenAmount, textLength } from '../ledger.limits.js';
import type { TokenAccountEvent } from './token-account.events.js';
import type { Purchase, TokenAccountState } from './token-account.state.js';
import { PAYMENT_STATUSES, type Payment, type PaymentStatus } from './payment.state.js';

type EncodedTokenAccount = { readonly balance: number; readonly purchases: readonly Purchase[]; readonly payments: readonly Payment[] };

const VERSION = 2;

/**
 * Version 2: the balance, every credited purchase (for exact `paymentId` idempotency) and every
 * payment with its status (version 1 had no payments, so its snapshots are ignored and replayed).
 * Decoding checks every field, so a damaged snapshot is rejected rather than believed.
 */
export const tokenAccountSnapshot: SnapshotSchema<TokenAccountState, TokenAccountEvent> = {
  version: VERSION,
  encode: (state): EncodedTokenAccount => ({ balance: state.balance, purchases: [...state.purchases.values()], payments: [...state.payments.values()] }),
  decode: (encoded) => {
    const { balance, purchases, payments } = expectRecord(encoded, 'snapshot');
    check(typeof balance === 'number' && Number.isSafeInteger(balance) && balance >= 0 && balance <= BALANCE_MAX, 'balance is not a valid balance');
    check(Array.isArray(purchases), 'purchases is not a list');
    check(Array.isArray(payments), 'payments is not a list');
    const decodedPayments = byId(payments as readonly unknown[], decodePayment);
    // Derived, not stored: the tokens of the payments whose refund is pending, as evolve keeps them.
    const reservedForRefunds = decodedPayments.reduce((sum, payment) => (payment.status === 'REFUND_PENDING' ? sum + payment.tokens : sum), 0);
    return { balance, purchases: byId(purchases as readonly unknown[], decodePurchase), payments: decodedPayments, reservedForRefunds };
  },
  agreesWith: (state, lastEvent) => {
    if ('balanceAfter' in lastEvent.data) return state.balance === lastEvent.data.balanceAfter;
    const payment = state.payments.get(lastEvent.data.paymentId);
    return payment !== undefined && payment.updatedAt === lastEvent.data.occurredAt && payment.status === statusAfter(lastEvent.type);
  },
};

function statusAfter(type: TokenAccountEvent['type']): PaymentStatus | undefined {
  switch (type) {
    case 'PaymentInitiated':
      return 'PENDING';
    case 'PaymentCaptured':
      return 'COMPLETED';
    case 'PaymentFailed':
    case 'PaymentExpired':
      return 'FAILED';
    case 'PaymentRefundRequested':
      return 'REFUND_PENDING';
    case 'PaymentRefunded':
      return 'REFUNDED';
    case 'TokensPurchased':
    case 'TokensUsed':
    case 'TokensRefunded':
    case 'TokensAdjusted':
      return undefined;
  }
}

function byId<T extends { readonly paymentId: string }>(items: readonly unknown[], decode: (item: unknown) => T): ImmutableMap<string, T> {
  return ImmutableMap<string, T>().withMutations((map) => {
    for (const item of items) {
      const decoded = decode(item);
      check(!map.has(decoded.paymentId), `payment ${decoded.paymentId} appears twice`);
      map.set(decoded.paymentId, decoded);
    }
  });
}

function decodePurchase(item: unknown): Purchase {
  const { userId, transactionId, paymentId, amount, description, balanceAfter, occurredAt } = expectRecord(item, 'purchase');
  check(typeof userId === 'string' && typeof transactionId === 'string' && typeof paymentId === 'string', 'purchase ids are not strings');
  check(typeof amount === 'number' && isTokenAmount(amount), 'purchase amount is not a token amount');
  check(description === null || (typeof description === 'string' && textLength(description) <= DESCRIPTION_LENGTH_MAX), 'purchase description is not valid');
  check(typeof balanceAfter === 'number' && Number.isSafeInteger(balanceAfter) && balanceAfter >= amount, 'purchase balanceAfter is not valid');
  check(isTime(occurredAt), 'purchase occurredAt is not a time');
  return { userId, transactionId, paymentId, amount, description, balanceAfter, occurredAt };
}

function decodePayment(item: unknown): Payment {
  const record = expectRecord(item, 'payment');
  const { userId, paymentId, orderId, packageId, provider, tokens, amount, currency, occurredAt, expiresAt, updatedAt, status, failure } = record;
  const { failureReason, providerTransactionId, providerRefundId, tokensDebited } = record;
  check([userId, paymentId, orderId, packageId, provider].every((value) => typeof value === 'string'), 'payment ids are not strings');
  check(typeof tokens === 'number' && isTokenAmount(tokens), 'payment tokens is not a token amount');
  check(typeof amount === 'number' && isMoneyAmount(amount), 'payment amount is not a price');
  check(typeof currency === 'string' && CURRENCY_PATTERN.test(currency), 'payment currency is not a currency');
  check(isTime(occurredAt) && isTime(expiresAt) && isTime(updatedAt), 'payment times are not times');
  check(PAYMENT_STATUSES.includes(status as PaymentStatus), 'payment status is not a status');
  check(failure === null || failure === 'declined' || failure === 'expired', 'payment failure is not valid');
  check([failureReason, providerTransactionId, providerRefundId].every((value) => value === null || typeof value === 'string'), 'payment references are not valid');
  check(tokensDebited === null || (typeof tokensDebited === 'number' && Number.isSafeInteger(tokensDebited) && tokensDebited >= 0), 'payment tokensDebited is not valid');
  return record as Payment;
}

function isTime(value: unknown): value is string {
  return typeof value === 'string' && !Number.isNaN(Date.parse(value));
}

function expectRecord(value: unknown, what: string): Record<string, unknown> {
  check(typeof value === 'object' && value !== null && !Array.isArray(value), `${what} is not an object`);
  return value as Record<string, unknown>;
}

function check(condition: boolean, reason: string): asserts condition {
  if (!condition) throw new SnapshotRejected(`token account snapshot v${VERSION}: ${reason}`);
}
