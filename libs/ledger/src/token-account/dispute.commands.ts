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
     * Whether the provider holds a refund of the payment, made or still pending (read when a lost
     * dispute of a payment whose refund is pending is recorded): then that refund is on its way and
     * the dispute completes the ledger's. Absent: none (the provider refused it, or was never asked).
     */
    readonly refundAtProvider?: boolean;
    readonly transactionId: string;
    readonly now: Date;
  };
};
