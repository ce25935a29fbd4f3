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
 * A hold ended by its settle, in one event: `settledAmount` is debited from the hold's reservations
 * (`draws`, a `usage` transaction `transactionId`) and `releasedAmount` goes back to available;
 * `balanceAfter` is after the debit (ADR 0028).
 *
 * Written before ADR 0028, a settle was two events: this one without `draws`, `description` or
 * `metadata`, its `balanceAfter` the balance before the debit, followed in the same append by the
 * `TokensUsed` (with this `holdId`) that debited. Replay, read models and audits accept both forms;
 * `isSettleWithDebit` tells them apart.
 */
export type HoldSettled = {
  readonly type: 'HoldSettled';
  readonly data: {
    readonly userId: string;
    readonly holdId: string;
    /** The hold's amount: `settledAmount + releasedAmount`. */
    readonly amount: number;
    readonly settledAmount: number;
    readonly releasedAmount: number;
    readonly transactionId: string;
    /** The usage's description: the settle's, else the hold's. Absent before ADR 0028. */
    readonly description?: string | null;
    /** The lots the settled amount came from, taken from the hold's reservations in their order. Absent before ADR 0028. */
    readonly draws?: readonly Draw[];
    readonly balanceAfter: number;
    readonly heldAfter: number;
    readonly occurredAt: string;
    /** The usage's metadata: the settle's, else the hold's; absent when neither had any. */
    readonly metadata?: Metadata;
  };
};

/** The settle records its own debit (since ADR 0028), rather than a `TokensUsed` after it. */
export function isSettleWithDebit(data: HoldSettled['data']): data is HoldSettled['data'] & { readonly draws: readonly Draw[] } {
  return data.draws !== undefined;
}

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
