import { LedgerError } from '../ledger.errors.js';
import { BALANCE_MAX } from '../ledger.limits.js';
import { assertBalanceFits } from './balance.rules.js';

function thrown(run: () => void): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('assertBalanceFits', () => {
  it('accepts a credit that takes the balance exactly to the maximum', () => {
    expect(thrown(() => assertBalanceFits(BALANCE_MAX - 10, 10))).toBeUndefined();
  });

  it('refuses a credit one token above the maximum with the balance and the amount requested', () => {
    const error = thrown(() => assertBalanceFits(BALANCE_MAX - 10, 11));
    expect(error).toBeInstanceOf(LedgerError);
    expect(error).toMatchObject({ code: 'BALANCE_OUT_OF_RANGE', details: { balance: BALANCE_MAX - 10, requested: 11 } });
  });

  it('accepts any debit, even at the maximum', () => {
    expect(thrown(() => assertBalanceFits(BALANCE_MAX, -1))).toBeUndefined();
  });
});
