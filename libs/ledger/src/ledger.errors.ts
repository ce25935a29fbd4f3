/**
 * Expected rejections, as a closed union of codes. The HTTP edge maps each code to a status once;
 * nothing else in the code base inspects messages.
 */
export type LedgerErrorCode =
  | 'AMOUNT_OUT_OF_RANGE'
  | 'DESCRIPTION_TOO_LONG'
  | 'INSUFFICIENT_BALANCE'
  | 'BALANCE_OUT_OF_RANGE'
  | 'PAYMENT_ID_REUSED'
  | 'PAYMENT_NOT_FOUND'
  | 'PAYMENT_EXPIRED'
  | 'PAYMENT_DECLINED'
  | 'PAYMENT_NOT_CAPTURED'
  | 'REFUND_EXCEEDS_BALANCE'
  | 'ADJUSTMENT_EXCEEDS_BALANCE'
  | 'REASON_REQUIRED'
  | 'REASON_TOO_LONG';

export type LedgerErrorDetails = Readonly<Record<string, string | number | null>>;

export class LedgerError extends Error {
  override readonly name = 'LedgerError';

  constructor(
    readonly code: LedgerErrorCode,
    message: string,
    readonly details: LedgerErrorDetails = {},
  ) {
    super(message);
  }
}

/**
 * A stream that cannot be folded (an event that would drive a balance negative, an unknown event
 * type) means corrupt data or a bug. It is never caught as a business rejection.
 */
export class LedgerInvariantViolation extends Error {
  override readonly name = 'LedgerInvariantViolation';
}

export function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) throw new LedgerInvariantViolation(message);
}
