import type { DisputeOutcome } from './dispute.events.js';

export type DisputeStatus = 'open' | DisputeOutcome;

/** A dispute as the account knows it. */
export type Dispute = {
  readonly disputeId: string;
  readonly paymentId: string;
  readonly status: DisputeStatus;
  /** What a lost dispute owed back (`PaymentDisputeClosed.tokens`: taken, or added to the shortfall); 0 while open and when won. */
  readonly tokens: number;
  readonly openedAt: string;
  readonly closedAt: string | null;
};

export const DISPUTE_STATUSES: readonly DisputeStatus[] = ['open', 'won', 'lost'];
