import { invariant, LEDGER_ERROR_CODES, LedgerError, LedgerInvariantViolation } from './ledger.errors.js';

describe('ledger errors', () => {
  it('offers clients exactly these rejection codes (each one has a problem type at the HTTP edge)', () => {
    expect([...LEDGER_ERROR_CODES].sort()).toEqual(
      [
        'ACCOUNT_IN_SHORTFALL',
        'ADJUSTMENT_EXCEEDS_BALANCE',
        'AMOUNT_OUT_OF_RANGE',
        'BALANCE_OUT_OF_RANGE',
        'DESCRIPTION_TOO_LONG',
        'INSUFFICIENT_BALANCE',
        'PAYMENT_DECLINED',
        'PAYMENT_DISPUTED',
        'PAYMENT_EXPIRED',
        'PAYMENT_ID_REUSED',
        'PAYMENT_NOT_CAPTURED',
        'PAYMENT_NOT_FOUND',
        'REASON_REQUIRED',
        'REASON_TOO_LONG',
        'REFUND_EXCEEDS_BALANCE',
        'REFUND_EXCEEDS_LOT',
        'TOO_MANY_PENDING_PAYMENTS',
        'METADATA_INVALID',
        'INSUFFICIENT_AVAILABLE_BALANCE',
        'HOLD_NOT_FOUND',
        'HOLD_NOT_ACTIVE',
        'HOLD_ID_REUSED',
        'SETTLE_EXCEEDS_HOLD',
        'HOLD_LIMIT_REACHED',
        'HOLD_TTL_OUT_OF_RANGE',
        'LOT_LIMIT_REACHED',
        'LOT_PRIORITY_OUT_OF_RANGE',
        'LOT_EXPIRY_OUT_OF_RANGE',
        'LOT_NOT_FOUND',
        'LOT_NOT_ACTIVE',
        'LOT_NOT_A_GRANT',
        'LOT_HELD',
      ].sort(),
    );
  });

  it('carries its code, message and details, and no details when none are given', () => {
    const error = new LedgerError('INSUFFICIENT_BALANCE', 'the balance 1 is less than the 2 tokens requested', { balance: 1, requested: 2 });
    expect(error).toMatchObject({ code: 'INSUFFICIENT_BALANCE', message: 'the balance 1 is less than the 2 tokens requested', details: { balance: 1, requested: 2 } });
    expect(new LedgerError('PAYMENT_NOT_FOUND', 'gone').details).toEqual({});
  });

  it('names its class where it is logged (a rejection and a corrupt stream must not read alike)', () => {
    expect(String(new LedgerError('PAYMENT_NOT_FOUND', 'gone'))).toBe('LedgerError: gone');
    expect(String(new LedgerInvariantViolation('a balance below zero'))).toBe('LedgerInvariantViolation: a balance below zero');
  });

  it('asserts an invariant by throwing only when it does not hold', () => {
    expect(() => invariant(true, 'holds')).not.toThrow();
    expect(() => invariant(false, 'a balance below zero')).toThrow(new LedgerInvariantViolation('a balance below zero'));
  });
});
