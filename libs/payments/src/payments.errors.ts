import { CodedError, type LedgerErrorDetails } from '@app/ledger';

/**
 * Rejections of the payments application layer (the ledger's own are `LedgerError`s):
 * PACKAGE_NOT_FOUND, PAYMENTS_DISABLED, PAYMENT_NOT_AUTHORIZED (a capture before the buyer approved),
 * WEBHOOK_SIGNATURE_INVALID and PROVIDER_NOT_CONFIGURED (a provider's webhook route when another
 * provider is configured) are `PaymentsError`s, PROVIDER_UNAVAILABLE a `PaymentProviderError`.
 */
export const PAYMENTS_ERROR_CODES = ['PACKAGE_NOT_FOUND', 'PROVIDER_UNAVAILABLE', 'PROVIDER_RATE_LIMITED', 'PAYMENTS_DISABLED', 'PAYMENT_NOT_AUTHORIZED', 'WEBHOOK_SIGNATURE_INVALID', 'PROVIDER_NOT_CONFIGURED'] as const;

export type PaymentsErrorCode = (typeof PAYMENTS_ERROR_CODES)[number];

export class PaymentsError extends CodedError<PaymentsErrorCode, LedgerErrorDetails> {
  override readonly name = 'PaymentsError';

  constructor(code: PaymentsErrorCode, message: string, details: LedgerErrorDetails = {}) {
    super(code, message, details);
  }
}
