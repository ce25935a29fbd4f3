/** Payment commands. The handler supplies ids, times and the provider's answers; deciding stays pure. */
export type InitiatePayment = {
  readonly type: 'InitiatePayment';
  readonly data: {
    readonly userId: string;
    readonly paymentId: string;
    readonly orderId: string;
    readonly packageId: string;
    readonly tokens: number;
    readonly amount: number;
    readonly currency: string;
    readonly provider: string;
    readonly now: Date;
    readonly expiresAt: Date;
    /** How many payments the user may have open (PENDING and not yet expired at `now`) at once: PENDING_PAYMENTS_MAX. */
    readonly pendingPaymentsMax: number;
    /** The package's lot terms now, which the payment keeps for its capture. */
    readonly lot?: PurchaseLotTerms;
  };
};

/** What the provider answered to a capture (or to a status query about the order). */
export type CaptureOutcome = { readonly status: 'captured'; readonly providerTransactionId: string } | { readonly status: 'declined'; readonly reason: string };

export type CapturePayment = {
  readonly type: 'CapturePayment';
  readonly data: {
    readonly userId: string;
    readonly paymentId: string;
    readonly outcome: CaptureOutcome;
    readonly transactionId: string;
    readonly now: Date;
    /** The package's terms for the lot the capture credits; absent: LOT_PRIORITY_DEFAULT and no expiry. */
    readonly lot?: PurchaseLotTerms;
  };
};

/** A package's terms for its lots: a priority and a lifetime in days from the capture (null: no expiry). */
export type PurchaseLotTerms = { readonly priority: number; readonly expiresInDays: number | null };

export type ExpirePayment = {
  readonly type: 'ExpirePayment';
  readonly data: { readonly userId: string; readonly paymentId: string; readonly now: Date };
};

/**
 * Records that a refund is asked for, before the provider is called. `transactionId` only seeds the
 * ids of the expiries decided with it (a hold or lot past its expiry at `now`); the request itself
 * writes no transaction.
 */
export type RequestRefund = {
  readonly type: 'RequestRefund';
  readonly data: { readonly userId: string; readonly paymentId: string; readonly transactionId: string; readonly now: Date };
};

export type RefundPayment = {
  readonly type: 'RefundPayment';
  readonly data: { readonly userId: string; readonly paymentId: string; readonly providerRefundId: string; readonly transactionId: string; readonly now: Date };
};

/**
 * Ends a refund request whose refund failed at the provider (`reason`, `providerRefundId`: the
 * provider's). `requestedAt` names the request the failure was learned for: the pending payment's
 * `updatedAt` (its request's time) when the provider was asked, so a failure learned for one request
 * never ends a later one. `transactionId` only seeds the ids of the expiries decided with it.
 */
export type FailRefund = {
  readonly type: 'FailRefund';
  readonly data: {
    readonly userId: string;
    readonly paymentId: string;
    readonly requestedAt: string;
    readonly providerRefundId: string | null;
    readonly reason: string;
    readonly transactionId: string;
    readonly now: Date;
  };
};

export type PaymentCommand = InitiatePayment | CapturePayment | ExpirePayment | RequestRefund | FailRefund | RefundPayment;
