import { Map as ImmutableMap } from 'immutable';
import { invariant, LedgerInvariantViolation } from '../ledger.errors.js';
import { BALANCE_MAX } from '../ledger.limits.js';
import type { TokenAccountEvent, TokensPurchased } from './token-account.events.js';

export type Purchase = TokensPurchased['data'];

export type TokenAccountState = {
  readonly balance: number;
  /**
   * Every credited payment by its id: the source of exact idempotency for `AddTokens`. A persistent
   * map, so that folding a long stream stays linear and earlier states are never changed.
   */
  readonly purchases: ImmutableMap<string, Purchase>;
};

export const initialTokenAccountState: TokenAccountState = { balance: 0, purchases: ImmutableMap() };

export function evolveTokenAccount(state: TokenAccountState, event: TokenAccountEvent): TokenAccountState {
  switch (event.type) {
    case 'TokensPurchased': {
      const balance = state.balance + event.data.amount;
      invariant(balance <= BALANCE_MAX, `balance ${balance} exceeds the maximum`);
      invariant(balance === event.data.balanceAfter, `purchase records balanceAfter ${event.data.balanceAfter}, replay gives ${balance}`);
      invariant(!state.purchases.has(event.data.paymentId), `payment ${event.data.paymentId} credited twice`);
      return { balance, purchases: state.purchases.set(event.data.paymentId, event.data) };
    }
    case 'TokensUsed': {
      const balance = state.balance - event.data.amount;
      invariant(balance >= 0, `usage of ${event.data.amount} drives the balance ${state.balance} below zero`);
      invariant(balance === event.data.balanceAfter, `usage records balanceAfter ${event.data.balanceAfter}, replay gives ${balance}`);
      return { ...state, balance };
    }
    default: {
      const unknown: never = event;
      throw new LedgerInvariantViolation(`unknown token account event ${JSON.stringify(unknown)}`);
    }
  }
}
