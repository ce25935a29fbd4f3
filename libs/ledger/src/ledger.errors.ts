/**
 * What an expected rejection tells beyond its code: JSON values, which the HTTP edge shows to the
 * caller as extra members of the problem body.
 */
export type ErrorDetail = string | number | boolean | null | readonly ErrorDetail[] | { readonly [key: string]: ErrorDetail };
export type ErrorDetails = { readonly [key: string]: ErrorDetail };

/**
 * The one base of every expected rejection in every lib: a code from its lib's closed union, and
 * details. Each lib declares its codes as a list (its union is derived from it); the HTTP edge
 * composes the lists and maps every code to a status once, so nothing inspects messages or error
 * classes. Generic, so that the ledger imports nothing of ours and the other libs extend it.
 */
export abstract class CodedError<Code extends string, Details extends ErrorDetails = ErrorDetails> extends Error {
  constructor(
    readonly code: Code,
    message: string,
    readonly details: Details,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The ledger's expected rejections, as a closed list of codes. */
export const LEDGER_ERROR_CODES = [
  'AMOUNT_OUT_OF_RANGE',
  'DESCRIPTION_TOO_LONG',
  'INSUFFICIENT_BALANCE',
  'BALANCE_OUT_OF_RANGE',
  'PAYMENT_ID_REUSED',
  'PAYMENT_NOT_FOUND',
  'PAYMENT_EXPIRED',
  'PAYMENT_DECLINED',
  'PAYMENT_NOT_CAPTURED',
  'REFUND_EXCEEDS_BALANCE',
  'ADJUSTMENT_EXCEEDS_BALANCE',
  'REASON_REQUIRED',
  'REASON_TOO_LONG',
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
  'REFUND_EXCEEDS_LOT',
  'TOO_MANY_PENDING_PAYMENTS',
  'METADATA_INVALID',
  'ACCOUNT_IN_SHORTFALL',
  'PAYMENT_DISPUTED',
] as const;

export type LedgerErrorCode = (typeof LEDGER_ERROR_CODES)[number];

export type LedgerErrorDetails = Readonly<Record<string, string | number | null>>;

export class LedgerError extends CodedError<LedgerErrorCode, LedgerErrorDetails> {
  override readonly name = 'LedgerError';

  constructor(code: LedgerErrorCode, message: string, details: LedgerErrorDetails = {}) {
    super(code, message, details);
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
