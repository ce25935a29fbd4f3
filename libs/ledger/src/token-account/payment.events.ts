import type { Draw } from './lot.state.js';
import type { PurchaseLotTerms } from './payment.commands.js';

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
    /**
     * The package's lot terms when the payment was opened (what the buyer was offered): its capture
     * credits a lot on these, whatever the configuration says by then. Absent from payments opened
     * before 5 December 2026, whose capture takes the package's terms as configured at the capture.
     */
    readonly lot?: PurchaseLotTerms;
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
 * The refund asked for failed at the provider (Stripe: the refund `failed` or was `canceled`, so the
 * money stayed with the merchant) and no other refund returned it: the request ends, the payment is
 * COMPLETED again and the tokens its request reserved are the account's to spend (ADR 0021). `reason`
 * is the provider's (`failed: expired_or_canceled_card`); `providerRefundId` the refund that failed.
 * Asking for the refund again starts a new request.
 */
export type PaymentRefundFailed = {
  readonly type: 'PaymentRefundFailed';
  readonly data: {
    readonly userId: string;
    readonly paymentId: string;
    readonly orderId: string;
    /** The tokens the request reserved, now released: the payment's `tokens`. */
    readonly tokens: number;
    readonly providerRefundId: string | null;
    readonly reason: string;
    readonly occurredAt: string;
  };
};

/**
 * The provider refunded the payment. `tokensDebited` is what the `TokensRefunded` after it takes back:
 * the payment's tokens, or less when the provider refunded without our request (an operator at the
 * provider) and part of the purchase's lot was spent or held by holds. `heldBack` (present when above
 * 0) is the held part, taken as the holds give it back (`TokensRefunded` with `heldAtRefund`); the
 * spent part stays spent (the money is back with the customer either way).
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
    /** Tokens of the purchase's lot that holds held at the refund, to take when they give them back; absent when none. */
    readonly heldBack?: number;
    readonly occurredAt: string;
  };
};

/**
 * Tokens taken back by a refund: a negative `refund` transaction. Normally in the refund's own append,
 * after `PaymentRefunded`. With `heldAtRefund`, later: part of what the refund held back (held by
 * holds then), which a hold gave back (released, settled for less or expired); the refund takes it in
 * the same append (`expiriesDue`). It adds to the payment's `tokensDebited`.
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

export type PaymentEvent = PaymentInitiated | PaymentCaptured | PaymentFailed | PaymentExpired | PaymentRefundRequested | PaymentRefundFailed | PaymentRefunded;

/** What `metadata.error` says of an expired payment, as the classic system did. */
export const PAYMENT_TIMED_OUT = 'Payment timed out';
