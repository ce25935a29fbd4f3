import { LedgerError } from '../ledger.errors.js';
import { BALANCE_MAX } from '../ledger.limits.js';

/**
 * Refuses a change that would take the balance above BALANCE_MAX (BALANCE_OUT_OF_RANGE): every
 * credit is checked here, the purchase, the payment capture (before the provider takes the money
 * and again when the capture is recorded) and the adjustment. `amount` is signed; a debit always
 * fits. `evolve` asserts the same bound on the events.
 */
export function assertBalanceFits(balance: number, amount: number): void {
  if (amount > BALANCE_MAX - balance) {
    throw new LedgerError('BALANCE_OUT_OF_RANGE', `a credit of ${amount} would take the balance above ${BALANCE_MAX}`, { balance, requested: amount });
  }
}
