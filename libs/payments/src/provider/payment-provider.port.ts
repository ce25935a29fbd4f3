import { CodedError, type CaptureOutcome } from '@app/ledger';
import type { PaymentsErrorCode } from '../payments.errors.js';

/** What the provider knows of an order; 'unknown' when it has no such order. */
export type ProviderOrderStatus = 'created' | 'captured' | 'declined' | 'refunded' | 'unknown';

export type ProviderOrder = {
  readonly status: ProviderOrderStatus;
  readonly providerTransactionId: string | null;
  readonly declineReason: string | null;
  /** The refund's id once the order is refunded (by us or by an operator at the provider). */
  readonly providerRefundId: string | null;
};

export type OrderRequest = {
  /** Our payment id, given to the provider as its merchant reference. */
  readonly paymentId: string;
  readonly amount: number;
  readonly currency: string;
  readonly description: string;
};

/**
 * A payment provider. Every call that moves money carries an idempotency key derived from the
 * payment id (`providerIdempotencyKey`), which an adapter sends as the provider's idempotency key
 * (Stripe's `Idempotency-Key`, PayPal's `PayPal-Request-Id`): repeating a call after a timeout or a
 * crash repeats its effect at most once. `createOrder` is idempotent by payment id. A transient
 * failure (timeout, unavailable) throws `PaymentProviderError`; the caller does not know whether
 * the call took effect, so it retries or asks `getOrder`.
 */
export interface PaymentProvider {
  readonly name: string;
  createOrder(request: OrderRequest): Promise<{ readonly orderId: string }>;
  /** Captures the order's money; a decline is an outcome, not an error. */
  capture(orderId: string, idempotencyKey: string): Promise<CaptureOutcome>;
  getOrder(orderId: string): Promise<ProviderOrder>;
  /** Refunds the order's whole amount; refunding a refunded order answers its refund again. */
  refund(orderId: string, idempotencyKey: string): Promise<{ readonly providerRefundId: string }>;
}

/** The idempotency key of a provider call that moves money: one per payment and operation, so every retry of it, by any process, is the same call. */
export function providerIdempotencyKey(operation: 'capture' | 'refund', paymentId: string): string {
  return `${operation}-${paymentId}`;
}

export const PAYMENT_PROVIDER = Symbol('PAYMENT_PROVIDER');

/**
 * The provider did not answer, or refused the call (PROVIDER_UNAVAILABLE): the caller cannot tell
 * whether the call took effect, so the request is safe to retry and a retry records the outcome once.
 */
export class PaymentProviderError extends CodedError<PaymentsErrorCode> {
  override readonly name = 'PaymentProviderError';

  constructor(
    message: string,
    readonly kind: 'timeout' | 'unavailable' | 'rejected',
  ) {
    super('PROVIDER_UNAVAILABLE', message, { providerError: kind });
  }
}
