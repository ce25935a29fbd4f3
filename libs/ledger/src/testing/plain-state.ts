import type { TokenAccountState } from '../token-account/token-account.state.js';

/**
 * An account's state as plain data, so that Jest compares two states member by member and shows
 * where they differ: the persistent maps as objects, the ended holds as `[holdId, end]` pairs in
 * their order (which decides the one forgotten next).
 */
export function plainState(state: TokenAccountState): Record<string, unknown> {
  return {
    ...state,
    purchases: state.purchases.toJS(),
    payments: state.payments.toJS(),
    lots: state.lots.toJS(),
    holds: state.holds.toJS(),
    endedHolds: [...state.endedHolds.entries()],
    disputes: state.disputes.toJS(),
    refundsHeldBack: state.refundsHeldBack.toJS(),
  };
}
