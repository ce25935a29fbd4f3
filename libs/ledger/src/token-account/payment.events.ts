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
 * The provider refunded the payment. `tokensDebited` is what `TokensRefunded` takes back: the
 * payment's tokens, or less only when a concurrent spend in another process emptied the balance
 * between the refund check and the provider's refund (the money is back with the customer either way).
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

/** Tokens taken back by a refund: a negative `refund` transaction. */
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
  };
};

export type PaymentEvent = PaymentInitiated | PaymentCaptured | PaymentFailed | PaymentExpired | PaymentRefundRequested | PaymentRefunded;

/** What `metadata.error` says of an expired payment, as the classic system did. */
export const PAYMENT_TIMED_OUT = 'Payment timed out';
