import { CodedError, type CaptureOutcome } from '@app/ledger';
import type { PaymentsErrorCode } from '../payments.errors.js';
import type { ProviderDispute } from '../record-dispute/record-dispute.flow.js';

/**
 * What the provider knows of an order; 'unknown' when it has no such order. 'created' covers every
 * state before the money is taken (awaiting the buyer, authorised and capturable); 'canceled' is an
 * order the provider will never capture (cancelled at our expiry, or by an operator). An order
 * partly refunded stays 'captured' until it is refunded whole (ADR 0021). 'captured_in_part': the
 * provider took money that is not the payment's price: less than the order's amount (an operator
 * captured part of it at the provider), or an order whose amount or currency was changed at the
 * provider (the name is kept from the first case); nothing is credited and an operator decides;
 * with `providerRefundId` once what was taken is refunded whole (then nothing was kept).
 */
export type ProviderOrderStatus = 'created' | 'captured' | 'captured_in_part' | 'declined' | 'canceled' | 'refunded' | 'unknown';

export type ProviderOrder = {
  readonly status: ProviderOrderStatus;
  readonly providerTransactionId: string | null;
  readonly declineReason: string | null;
  /** The refund's id once the order is refunded (by us or by an operator at the provider). */
  readonly providerRefundId: string | null;
  /** A refund of the order is still pending at the provider (Stripe: the bank has not confirmed it): the order may read captured until it is decided. */
  readonly refundPending?: boolean;
  /** The id of that pending refund (the first, should there be several). */
  readonly pendingRefundId?: string;
  /**
   * Of a captured order, the money refunds returned, in minor units of its currency (Stripe: the
   * charge's `amount_refunded`, which counts a pending refund until it fails); absent when the
   * provider does not say.
   */
  readonly amountRefunded?: number;
};

export type OrderRequest = {
  /** Our payment id, given to the provider as its merchant reference. */
  readonly paymentId: string;
  readonly amount: number;
  readonly currency: string;
  readonly description: string;
  /** Our user id, given to the provider as metadata (Stripe), so an operator sees whose payment it is. */
  readonly userId: string;
};

/**
 * A payment's order at the provider and the price it was created for (a `Payment` is one): what the
 * provider took is checked against that price, not against the order's own amount, which whoever
 * holds the provider's API key can change before the buyer confirms it.
 */
export type PaymentOrder = { readonly orderId: string; readonly amount: number; readonly currency: string };

/** A new order: its id, and what the client needs to let the buyer approve it (Stripe's PaymentIntent `client_secret`), if anything. */
export type CreatedOrder = { readonly orderId: string; readonly clientSecret?: string };

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
  createOrder(request: OrderRequest): Promise<CreatedOrder>;
  /**
   * What the client needs to let the buyer approve an order made before (Stripe: the PaymentIntent's
   * `client_secret`, read, not created again), or null when the provider needs nothing. A keyed replay
   * of `POST /v1/payments` answers with it: asking to create the order again would rely on the
   * provider still remembering the idempotency key (Stripe forgets keys after 24 hours).
   */
  clientSecretOf(orderId: string): Promise<string | null>;
  /**
   * Captures the order's money; a decline is an outcome, not an error. An order the provider holds for
   * another amount or currency than the payment's price is not captured: it is declined
   * (`price_mismatch`), so the payment fails and its order is cancelled.
   */
  capture(order: PaymentOrder, idempotencyKey: string): Promise<CaptureOutcome>;
  /** The order as the provider has it; money taken that is not the payment's price is `captured_in_part`. */
  getOrder(order: PaymentOrder): Promise<ProviderOrder>;
  /**
   * Refunds the order's whole amount; refunding a refunded order answers its refund again. A refund
   * the provider has not finished (`pending`: the bank has not confirmed it) is not the money back
   * yet: the ledger records the refund only once it `succeeded`, and asks again with the same key.
   * A refund that failed, or that the provider refuses for good, is REFUND_FAILED.
   */
  refund(order: PaymentOrder, idempotencyKey: string): Promise<ProviderRefund>;
  /**
   * The refund asked for under `idempotencyKey`, as the provider has it now, or, when there is none or
   * it failed, a refund made without us since (an operator's, at the provider); undefined when there
   * is neither. It never makes a refund: the ledger asks it before reserving a refund's tokens. A
   * failed refund of ours with no other since is REFUND_FAILED, as `refund` answers it.
   */
  findRefund(order: PaymentOrder, idempotencyKey: string): Promise<ProviderRefund | undefined>;
  /**
   * Makes sure the provider never captures the order (our expiry): cancels it unless it was captured,
   * and answers the order as the provider has it afterwards, so an order captured meanwhile is
   * credited, not expired.
   */
  cancel(order: PaymentOrder, idempotencyKey: string): Promise<ProviderOrder>;
}

/** A dispute the provider holds of one of our payments: the payment its order's metadata names, that order, and the dispute as the ledger records one. */
export type ReportedDispute = { readonly paymentId: string; readonly orderId: string; readonly dispute: ProviderDispute };

/**
 * The provider's disputes read in bulk, for the reconciliation job's sweep (ADR 0024): a dispute
 * otherwise reaches the ledger only by the provider's notification, which it stops sending after its
 * retries. Stripe lists them by creation time.
 */
export interface ProviderDisputes {
  /**
   * Every dispute created at or after `since` that concerns a payment of ours, open inquiries left out
   * (the ledger records none); a dispute that could not be read whole (its PaymentIntent, a value out
   * of shape) is among `failures`, so that it does not hide the others. A list that cannot be read throws.
   */
  disputesSince(since: Date): Promise<{ readonly disputes: readonly ReportedDispute[]; readonly failures: readonly { readonly disputeId: string; readonly error: unknown }[] }>;
}

/** A refund the provider made of one of our payments: the payment its order's metadata names, that order, and the refund's id. */
export type ReportedRefund = { readonly paymentId: string; readonly orderId: string; readonly refundId: string };

/**
 * The provider's refunds read in bulk, for the reconciliation job's sweep: a refund made at the
 * provider (an operator's, in Stripe's dashboard) reaches the ledger by the provider's notification,
 * which it stops sending after its retries, or by the job's comparison of payments changed within
 * the look-back, which a purchase older than that is not. Stripe lists them by creation time.
 */
export interface ProviderRefunds {
  /**
   * Every refund created at or after `since` that succeeded (the money went back) and concerns a
   * payment of ours; a refund that could not be read whole (its PaymentIntent) is among `failures`,
   * so that it does not hide the others. A list that cannot be read throws.
   */
  refundsSince(since: Date): Promise<{ readonly refunds: readonly ReportedRefund[]; readonly failures: readonly { readonly refundId: string; readonly error: unknown }[] }>;
}

/** A refund the provider made (`succeeded`: the money is on its way back), or has not finished (`pending`). */
export type ProviderRefund = { readonly providerRefundId: string; readonly status: 'succeeded' | 'pending' };

/** The idempotency key of a provider call that moves money: one per payment and operation, so every retry of it, by any process, is the same call. */
export function providerIdempotencyKey(operation: 'create' | 'capture' | 'refund' | 'cancel', paymentId: string): string {
  return `${operation}-${paymentId}`;
}

export const PAYMENT_PROVIDER = Symbol('PAYMENT_PROVIDER');

/**
 * A provider call that did not give an answer the flow can use:
 * - it did not answer, or failed on its side (PROVIDER_UNAVAILABLE, 502; `timeout`, `unavailable`):
 *   the caller cannot tell whether the call took effect, so the request is safe to retry and a retry
 *   records the outcome once;
 * - it kept refusing it as rate limited after our retries (PROVIDER_RATE_LIMITED, 503 with
 *   Retry-After): the same;
 * - it refused the call as sent (PROVIDER_REJECTED, 502; `rejected`: a bad API key, an amount or
 *   currency it does not take, an answer this adapter cannot read): nothing was done, and the same
 *   request is refused again until an operator acts, so it is not worth retrying as it is.
 * The message names the call and the provider's error type and code, never the provider's own text
 * (which may quote a key's last digits): that stays on the error's `cause`, for the log.
 */
export class PaymentProviderError extends CodedError<PaymentsErrorCode> {
  override readonly name = 'PaymentProviderError';

  constructor(
    message: string,
    readonly kind: 'timeout' | 'unavailable' | 'rejected' | 'rate_limited',
  ) {
    super(kind === 'rate_limited' ? 'PROVIDER_RATE_LIMITED' : kind === 'rejected' ? 'PROVIDER_REJECTED' : 'PROVIDER_UNAVAILABLE', message, { providerError: kind });
  }
}
