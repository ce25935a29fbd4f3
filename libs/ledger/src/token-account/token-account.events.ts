import { invariant } from '../ledger.errors.js';
import type { Metadata } from '../metadata.js';
import type { HoldEvent, LotEvent } from './hold.events.js';
import type { Draw, LotTerms } from './lot.state.js';
import type { PaymentEvent, TokensRefunded } from './payment.events.js';
import type { DisputeEvent } from './dispute.events.js';

/**
 * Events of one user's token account, stored in the stream `token-account-<userId>`.
 * Plain, readonly, JSON-serialisable data; amounts are positive integers (signed only in
 * `TokensAdjusted`) and `balanceAfter` is the balance once the event is applied, so read models and
 * auditors never have to re-derive it.
 */
export type TokensPurchased = {
  readonly type: 'TokensPurchased';
  readonly data: {
    readonly userId: string;
    readonly transactionId: string;
    readonly paymentId: string;
    readonly amount: number;
    readonly description: string | null;
    readonly balanceAfter: number;
    readonly occurredAt: string;
    /** The lot the credit creates; absent in events written before lots (they credit the opening lot). */
    readonly lot?: LotTerms;
    /** Absent before holds existed (then 0). */
    readonly heldAfter?: number;
  };
};

export type TokensUsed = {
  readonly type: 'TokensUsed';
  readonly data: {
    readonly userId: string;
    readonly transactionId: string;
    readonly amount: number;
    readonly description: string | null;
    readonly balanceAfter: number;
    readonly occurredAt: string;
    /** Where the tokens came from; absent before lots (then all from the opening lot). */
    readonly draws?: readonly Draw[];
    /** Written before ADR 0028 only: the hold this usage settles (its `HoldSettled` precedes it in the same append). */
    readonly holdId?: string;
    /** The caller's metadata; absent when none was given. */
    readonly metadata?: Metadata;
    readonly heldAfter?: number;
  };
};

/**
 * An admin's correction of the balance, either way: an `adjustment` transaction. The only token event
 * whose `amount` is signed (positive credits, negative debits, never 0). `reason` is required and is
 * what the transaction's description shows.
 */
export type TokensAdjusted = {
  readonly type: 'TokensAdjusted';
  readonly data: {
    readonly userId: string;
    readonly transactionId: string;
    readonly amount: number;
    readonly reason: string;
    readonly balanceAfter: number;
    readonly occurredAt: string;
    /** A credit's lot (absent before lots: the opening lot). */
    readonly lot?: LotTerms;
    /** A debit's draws (absent before lots: the opening lot). */
    readonly draws?: readonly Draw[];
    readonly heldAfter?: number;
  };
};

export type TokenAccountEvent = TokensPurchased | TokensUsed | TokensRefunded | TokensAdjusted | PaymentEvent | HoldEvent | LotEvent | DisputeEvent;
export type TokenAccountEventType = TokenAccountEvent['type'];

export const TOKEN_ACCOUNT_EVENT_TYPES: ReadonlySet<string> = new Set<TokenAccountEventType>([
  'TokensPurchased',
  'TokensUsed',
  'TokensRefunded',
  'TokensAdjusted',
  'PaymentInitiated',
  'PaymentCaptured',
  'PaymentFailed',
  'PaymentExpired',
  'PaymentRefundRequested',
  'PaymentRefundFailed',
  'PaymentRefunded',
  'TokensHeld',
  'HoldSettled',
  'HoldReleased',
  'HoldExpired',
  'TokensGranted',
  'GrantVoided',
  'LotExpired',
  'PaymentDisputeOpened',
  'PaymentDisputeClosed',
  'TokensChargedBack',
  'ShortfallCovered',
]);

/** The stream of a user's account. The id must be in canonical (lower-case) form: streams are named by text. */
export function tokenAccountStreamId(userId: string): string {
  invariant(userId === userId.toLowerCase(), `user id ${userId} is not in canonical lower-case form`);
  return `token-account-${userId}`;
}
