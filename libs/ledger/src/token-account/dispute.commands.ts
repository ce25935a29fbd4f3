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
    readonly transactionId: string;
    readonly now: Date;
  };
};
