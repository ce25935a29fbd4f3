import { CodedError, type LedgerErrorDetails } from '@app/ledger';

/**
 * Rejections of the payments application layer (the ledger's own are `LedgerError`s):
 * PACKAGE_NOT_FOUND and PAYMENTS_DISABLED are `PaymentsError`s, PROVIDER_UNAVAILABLE a `PaymentProviderError`.
 */
export const PAYMENTS_ERROR_CODES = ['PACKAGE_NOT_FOUND', 'PROVIDER_UNAVAILABLE', 'PAYMENTS_DISABLED'] as const;

export type PaymentsErrorCode = (typeof PAYMENTS_ERROR_CODES)[number];

export class PaymentsError extends CodedError<PaymentsErrorCode, LedgerErrorDetails> {
  override readonly name = 'PaymentsError';

  constructor(code: PaymentsErrorCode, message: string, details: LedgerErrorDetails = {}) {
    super(code, message, details);
  }
}
