import type { DisputeOutcome } from './dispute.events.js';

export type DisputeStatus = 'open' | DisputeOutcome;

/** A dispute as the account knows it. */
export type Dispute = {
  readonly disputeId: string;
  readonly paymentId: string;
  readonly status: DisputeStatus;
  readonly openedAt: string;
  readonly closedAt: string | null;
};

export const DISPUTE_STATUSES: readonly DisputeStatus[] = ['open', 'won', 'lost'];
