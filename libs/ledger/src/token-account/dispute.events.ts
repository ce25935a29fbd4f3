import type { Draw } from './lot.state.js';

/**
 * Disputes (chargebacks) of captured payments, in the user's stream like every payment event, each
 * about one provider dispute id (idempotent by it). A lost dispute takes the purchase's tokens back;
 * what the account no longer holds becomes its shortfall, which blocks spending until credits cover it
 * (ADR 0024).
 */

export type DisputeOutcome = 'won' | 'lost';

/** The buyer's bank disputed the payment; nothing moves until it is closed. */
export type PaymentDisputeOpened = {
  readonly type: 'PaymentDisputeOpened';
  readonly data: {
    readonly userId: string;
    readonly paymentId: string;
    readonly orderId: string;
    readonly disputeId: string;
    /** The disputed money in minor units of `currency`, as the provider reports it. */
    readonly amount: number;
    readonly currency: string;
    readonly reason: string;
    readonly occurredAt: string;
  };
};

/**
 * The dispute ended. Won: nothing changes. Lost: `tokens` were owed back, of which `tokensDebited`
 * leave with the `TokensChargedBack` that follows and the rest is added to the shortfall
 * (`shortfallAfter` is the account's shortfall once this event is applied).
 */
export type PaymentDisputeClosed = {
  readonly type: 'PaymentDisputeClosed';
  readonly data: {
    readonly userId: string;
    readonly paymentId: string;
    readonly orderId: string;
    readonly disputeId: string;
    readonly outcome: DisputeOutcome;
    readonly tokens: number;
    readonly tokensDebited: number;
    readonly shortfallAfter: number;
    readonly occurredAt: string;
  };
};

/** Tokens taken back by a lost dispute: a negative `chargeback` transaction. */
export type TokensChargedBack = {
  readonly type: 'TokensChargedBack';
  readonly data: {
    readonly userId: string;
    readonly transactionId: string;
    readonly paymentId: string;
    readonly disputeId: string;
    readonly amount: number;
    readonly description: string;
    readonly balanceAfter: number;
    readonly heldAfter: number;
    /** The purchase's own lot first, then the other lots in draw-down order; never held tokens. */
    readonly draws: readonly Draw[];
    readonly occurredAt: string;
  };
};

/**
 * Free tokens taken to pay off the shortfall: decided with every credit (and every hold's end) that
 * leaves free tokens while the shortfall is above 0. A negative `chargeback` transaction.
 */
export type ShortfallCovered = {
  readonly type: 'ShortfallCovered';
  readonly data: {
    readonly userId: string;
    readonly transactionId: string;
    readonly amount: number;
    readonly description: string;
    readonly balanceAfter: number;
    readonly heldAfter: number;
    readonly shortfallAfter: number;
    readonly draws: readonly Draw[];
    readonly occurredAt: string;
  };
};

export type DisputeEvent = PaymentDisputeOpened | PaymentDisputeClosed | TokensChargedBack | ShortfallCovered;

/** What a shortfall row says, in `transactionOf` and its SQL twin alike. */
export const SHORTFALL_COVERED_DESCRIPTION = 'Shortfall of lost disputes covered';
