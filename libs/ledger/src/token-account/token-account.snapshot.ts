import { Map as ImmutableMap } from 'immutable';
import { SnapshotRejected, type SnapshotSchema } from '../snapshot.js';
import { BALANCE_MAX, DESCRIPTION_LENGTH_MAX, isTokenAmount } from '../ledger.limits.js';
import type { TokenAccountEvent } from './token-account.events.js';
import type { Purchase, TokenAccountState } from './token-account.state.js';

type EncodedTokenAccount = { readonly balance: number; readonly purchases: readonly Purchase[] };

/**
 * Version 1: the balance and every credited purchase (needed for exact `paymentId` idempotency).
 * Decoding checks every field, so a damaged snapshot is rejected rather than believed.
 */
export const tokenAccountSnapshot: SnapshotSchema<TokenAccountState, TokenAccountEvent> = {
  version: 1,
  encode: (state): EncodedTokenAccount => ({ balance: state.balance, purchases: [...state.purchases.values()] }),
  decode: (encoded) => {
    const { balance, purchases } = expectRecord(encoded, 'snapshot');
    check(typeof balance === 'number' && Number.isSafeInteger(balance) && balance >= 0 && balance <= BALANCE_MAX, 'balance is not a valid balance');
    check(Array.isArray(purchases), 'purchases is not a list');
    const byPaymentId = ImmutableMap<string, Purchase>().withMutations((map) => {
      for (const item of purchases as readonly unknown[]) {
        const purchase = decodePurchase(item);
        check(!map.has(purchase.paymentId), `payment ${purchase.paymentId} appears twice`);
        map.set(purchase.paymentId, purchase);
      }
    });
    return { balance, purchases: byPaymentId };
  },
  agreesWith: (state, lastEvent) => state.balance === lastEvent.data.balanceAfter,
};

function decodePurchase(item: unknown): Purchase {
  const { userId, transactionId, paymentId, amount, description, balanceAfter, occurredAt } = expectRecord(item, 'purchase');
  check(typeof userId === 'string' && typeof transactionId === 'string' && typeof paymentId === 'string', 'purchase ids are not strings');
  check(typeof amount === 'number' && isTokenAmount(amount), 'purchase amount is not a token amount');
  check(description === null || (typeof description === 'string' && description.length <= DESCRIPTION_LENGTH_MAX), 'purchase description is not valid');
  check(typeof balanceAfter === 'number' && Number.isSafeInteger(balanceAfter) && balanceAfter >= amount, 'purchase balanceAfter is not valid');
  check(typeof occurredAt === 'string' && !Number.isNaN(Date.parse(occurredAt)), 'purchase occurredAt is not a time');
  return { userId, transactionId, paymentId, amount, description, balanceAfter, occurredAt };
}

function expectRecord(value: unknown, what: string): Record<string, unknown> {
  check(typeof value === 'object' && value !== null && !Array.isArray(value), `${what} is not an object`);
  return value as Record<string, unknown>;
}

function check(condition: boolean, reason: string): asserts condition {
  if (!condition) throw new SnapshotRejected(`token account snapshot v1: ${reason}`);
}
