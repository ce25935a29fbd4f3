import type { Metadata } from '../metadata.js';
import type { Draw, LotTerms } from './lot.state.js';

/**
 * Events of holds and credit lots, in the account's stream. Each carries the account's
 * `balanceAfter` and `heldAfter` (what the balance and the held total are once it is applied), so
 * read models and auditors take the last event's values and never re-derive them.
 */

/** Tokens set aside for a hold: `draws` says which lots' tokens it reserved. The balance does not change. */
export type TokensHeld = {
  readonly type: 'TokensHeld';
  readonly data: {
    readonly userId: string;
    readonly holdId: string;
    readonly amount: number;
    readonly description: string | null;
    readonly expiresAt: string;
    readonly draws: readonly Draw[];
    readonly balanceAfter: number;
    readonly heldAfter: number;
    readonly occurredAt: string;
    /** The caller's metadata; absent when none was given. */
    readonly metadata?: Metadata;
  };
};

/**
 * A hold ended by its settle: `settledAmount` is debited by the `TokensUsed` (with this `holdId`)
 * appended right after it, in the same append; `releasedAmount` goes back to available.
 */
export type HoldSettled = {
  readonly type: 'HoldSettled';
  readonly data: {
    readonly userId: string;
    readonly holdId: string;
    readonly amount: number;
    readonly settledAmount: number;
    readonly releasedAmount: number;
    readonly transactionId: string;
    readonly balanceAfter: number;
    readonly heldAfter: number;
    readonly occurredAt: string;
  };
};

/** A hold ended without a debit: released by the caller. */
export type HoldReleased = {
  readonly type: 'HoldReleased';
  readonly data: { readonly userId: string; readonly holdId: string; readonly amount: number; readonly balanceAfter: number; readonly heldAfter: number; readonly occurredAt: string };
};

/** A hold ended without a debit because its `expiresAt` passed; `occurredAt` is the decision's time, at or after it. */
export type HoldExpired = {
  readonly type: 'HoldExpired';
  readonly data: {
    readonly userId: string;
    readonly holdId: string;
    readonly amount: number;
    readonly expiresAt: string;
    readonly balanceAfter: number;
    readonly heldAfter: number;
    readonly occurredAt: string;
  };
};

/** An admin's promotional grant: a credit (an `adjustment` transaction) that creates its own lot. */
export type TokensGranted = {
  readonly type: 'TokensGranted';
  readonly data: {
    readonly userId: string;
    readonly transactionId: string;
    readonly amount: number;
    readonly reason: string;
    readonly lot: LotTerms;
    readonly balanceAfter: number;
    readonly heldAfter: number;
    readonly occurredAt: string;
  };
};

/** A grant's remainder taken back by an admin, with a reason: a negative `adjustment` transaction. */
export type GrantVoided = {
  readonly type: 'GrantVoided';
  readonly data: {
    readonly userId: string;
    readonly transactionId: string;
    readonly lotId: string;
    readonly amount: number;
    readonly reason: string;
    readonly draws: readonly Draw[];
    readonly balanceAfter: number;
    readonly heldAfter: number;
    readonly occurredAt: string;
  };
};

/**
 * A lot's unreserved remainder gone at its `expiresAt`: a negative `expiry` transaction. A part held
 * at that instant stays with its hold; if the hold gives it back, it expires by another `LotExpired`.
 */
export type LotExpired = {
  readonly type: 'LotExpired';
  readonly data: {
    readonly userId: string;
    readonly transactionId: string;
    readonly lotId: string;
    readonly amount: number;
    readonly expiresAt: string;
    readonly draws: readonly Draw[];
    readonly balanceAfter: number;
    readonly heldAfter: number;
    readonly occurredAt: string;
  };
};

export type HoldEvent = TokensHeld | HoldSettled | HoldReleased | HoldExpired;
export type LotEvent = TokensGranted | GrantVoided | LotExpired;
