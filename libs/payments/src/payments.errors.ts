import { CodedError, type LedgerErrorDetails } from '@app/ledger';

/**
 * Rejections of the payments application layer (the ledger's own are `LedgerError`s):
 * PACKAGE_NOT_FOUND, PAYMENTS_DISABLED, PAYMENT_NOT_AUTHORIZED (a capture before the buyer approved),
 * PAYMENT_CAPTURED_IN_PART (the provider took less than the payment's amount), REFUND_FAILED (the
 * provider's refund failed or was canceled), WEBHOOK_SIGNATURE_INVALID and PROVIDER_NOT_CONFIGURED (a
 * provider's webhook route when another provider is configured) are `PaymentsError`s,
 * PROVIDER_UNAVAILABLE, PROVIDER_REJECTED and PROVIDER_RATE_LIMITED a `PaymentProviderError`. The two provider outcomes above (a capture in part, a failed refund) are an operator's to settle:
 * nothing is credited or refunded, and the reconciliation job reports them.
 */
export const PAYMENTS_ERROR_CODES = [
  'PACKAGE_NOT_FOUND',
  'PROVIDER_UNAVAILABLE',
  'PROVIDER_REJECTED',
  'PROVIDER_RATE_LIMITED',
  'PAYMENTS_DISABLED',
  'PAYMENT_NOT_AUTHORIZED',
  'PAYMENT_CAPTURED_IN_PART',
  'REFUND_FAILED',
  'WEBHOOK_SIGNATURE_INVALID',
  'PROVIDER_NOT_CONFIGURED',
] as const;

export type PaymentsErrorCode = (typeof PAYMENTS_ERROR_CODES)[number];

export class PaymentsError extends CodedError<PaymentsErrorCode, LedgerErrorDetails> {
  override readonly name = 'PaymentsError';

  constructor(code: PaymentsErrorCode, message: string, details: LedgerErrorDetails = {}) {
    super(code, message, details);
  }
}
