/**
 * Records a provider dispute as the provider reports it now: open, or closed as won or lost. One
 * command for every notification, so that duplicates and any order of arrival decide the same events.
 */
export type RecordDispute = {
  readonly type: 'RecordDispute';
  readonly data: {
    readonly userId: string;
    readonly paymentId: string;
    readonly disputeId: string;
    readonly status: 'open' | 'won' | 'lost';
    /** The disputed money in minor units of `currency`. */
    readonly amount: number;
    readonly currency: string;
    readonly reason: string;
    /**
     * What refunds of part of the price (an operator's, at the provider) had returned of the payment
     * before, in minor units of `currency` (Stripe: the charge's `amount_refunded`). With the disputed
     * amount, it tells a lost dispute that left the merchant none of the money, which takes back every
     * token, as a refund of the rest would. Absent: none known.
     */
    readonly refundedBefore?: number;
    /**
     * The refund the provider holds of the payment, made or still pending, for the refund request
     * recorded at `requestedAt` (read when a lost dispute of part of the price meets a refund
     * pending in the ledger): that refund returns the rest of the money, so the dispute completes
     * the ledger's refund under its id. Absent: none (the provider refused it, or was not asked). A
     * request recorded at another time than `requestedAt` (the one read ended and another began) is
     * taken as one the provider holds no refund of.
     */
    readonly refundAtProvider?: { readonly requestedAt: string; readonly refundId: string };
    readonly transactionId: string;
    readonly now: Date;
  };
};
