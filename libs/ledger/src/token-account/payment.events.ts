import type { Draw } from './lot.state.js';

/**
 * Payment lifecycle events of a user's token account, in the same stream as the token events
 * (`token-account-<userId>`), so that capturing a payment and crediting its tokens are one append.
 * Every value a read model needs is in the event (times included), so projections stay pure.
 */
export type PaymentInitiated = {
  readonly type: 'PaymentInitiated';
  readonly data: {
    readonly userId: string;
    readonly paymentId: string;
    readonly orderId: string;
    readonly packageId: string;
    readonly tokens: number;
    /** The price in minor units of `currency` (cents for USD). */
    readonly amount: number;
    readonly currency: string;
    readonly provider: string;
    readonly occurredAt: string;
    /** After this time a payment still PENDING is expired (unless the provider captured it). */
    readonly expiresAt: string;
  };
};

export type PaymentCaptured = {
  readonly type: 'PaymentCaptured';
  readonly data: { readonly userId: string; readonly paymentId: string; readonly orderId: string; readonly providerTransactionId: string; readonly occurredAt: string };
};

/** The provider declined the capture. */
export type PaymentFailed = {
  readonly type: 'PaymentFailed';
  readonly data: { readonly userId: string; readonly paymentId: string; readonly orderId: string; readonly reason: string; readonly occurredAt: string };
};

/** Still PENDING after its expiry, and the provider had not captured it. */
export type PaymentExpired = {
  readonly type: 'PaymentExpired';
  readonly data: { readonly userId: string; readonly paymentId: string; readonly orderId: string; readonly reason: string; readonly occurredAt: string };
};

/**
 * A refund was asked for and allowed: recorded BEFORE the provider is called, so a crash between the
 * provider's refund and our record of it leaves a trace the reconciliation job finishes from. From
 * here the payment is REFUND_PENDING and its `tokens` are reserved: usage cannot spend them.
 */
export type PaymentRefundRequested = {
  readonly type: 'PaymentRefundRequested';
  readonly data: { readonly userId: string; readonly paymentId: string; readonly orderId: string; readonly tokens: number; readonly occurredAt: string };
};

/**
 * The provider refunded the payment. `tokensDebited` is what the `TokensRefunded` after it takes back:
 * the payment's tokens, or less when the provider refunded without our request (an operator at the
 * provider) and part of the purchase's lot was spent or held by a hold. The held part is taken when
 * its hold gives it back (`TokensRefunded` with `heldAtRefund`); the spent part stays spent (the
 * money is back with the customer either way).
 */
export type PaymentRefunded = {
  readonly type: 'PaymentRefunded';
  readonly data: {
    readonly userId: string;
    readonly paymentId: string;
    readonly orderId: string;
    readonly providerRefundId: string;
    readonly tokens: number;
    readonly tokensDebited: number;
    readonly occurredAt: string;
  };
};

/**
 * Tokens taken back by a refund: a negative `refund` transaction. Normally in the refund's own append,
 * after `PaymentRefunded`. With `heldAtRefund`, later: a refund the provider made on its own took what
 * was free of the purchase's lot, and these tokens were held by a hold then; the hold gave them back
 * (released, settled for less or expired), and the refund takes them in the same append
 * (`expiriesDue`). They add to the payment's `tokensDebited`.
 */
export type TokensRefunded = {
  readonly type: 'TokensRefunded';
  readonly data: {
    readonly userId: string;
    readonly transactionId: string;
    readonly paymentId: string;
    readonly amount: number;
    readonly description: string | null;
    readonly balanceAfter: number;
    readonly occurredAt: string;
    /** From the purchase's lot; absent before lots (then from the opening lot). */
    readonly draws?: readonly Draw[];
    readonly heldAfter?: number;
    /** Present (true) on tokens a hold held when the refund was recorded, taken when the hold gave them back. */
    readonly heldAtRefund?: true;
  };
};

export type PaymentEvent = PaymentInitiated | PaymentCaptured | PaymentFailed | PaymentExpired | PaymentRefundRequested | PaymentRefunded;

/** What `metadata.error` says of an expired payment, as the classic system did. */
export const PAYMENT_TIMED_OUT = 'Payment timed out';
