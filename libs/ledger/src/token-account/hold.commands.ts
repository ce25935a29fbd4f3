import type { Metadata } from '../metadata.js';

/**
 * Commands of holds and credit lots. Like every command they carry the time and the new ids, so
 * deciding stays pure; `transactionId` also seeds the ids of expiries decided beside them.
 */
export type HoldTokens = {
  readonly type: 'HoldTokens';
  readonly data: {
    readonly userId: string;
    readonly holdId: string;
    readonly amount: number;
    readonly description: string | null;
    /** The caller's metadata, kept with the hold; null or absent: none. */
    readonly metadata?: Metadata | null;
    readonly ttlSeconds: number;
    /** The service's configured maximum (at most HOLD_TTL_SECONDS_MAX). */
    readonly ttlSecondsMax: number;
    readonly transactionId: string;
    readonly now: Date;
  };
};

export type SettleHold = {
  readonly type: 'SettleHold';
  readonly data: {
    readonly userId: string;
    readonly holdId: string;
    /** The actual cost, at most the held amount; the rest is released. */
    readonly amount: number;
    /** The usage's description; null takes the hold's. */
    readonly description: string | null;
    /** The usage's metadata; null or absent takes the hold's. */
    readonly metadata?: Metadata | null;
    readonly transactionId: string;
    readonly now: Date;
  };
};

export type ReleaseHold = {
  readonly type: 'ReleaseHold';
  readonly data: { readonly userId: string; readonly holdId: string; readonly transactionId: string; readonly now: Date };
};

/** Records every expiry due at `now`: holds past their `expiresAt` and lots' unreserved remainders past theirs. */
export type ExpireCredits = {
  readonly type: 'ExpireCredits';
  readonly data: { readonly userId: string; readonly transactionId: string; readonly now: Date };
};

export type GrantTokens = {
  readonly type: 'GrantTokens';
  readonly data: {
    readonly userId: string;
    readonly amount: number;
    readonly reason: string;
    readonly priority: number;
    readonly expiresAt: Date | null;
    readonly transactionId: string;
    readonly now: Date;
  };
};

export type VoidGrant = {
  readonly type: 'VoidGrant';
  readonly data: { readonly userId: string; readonly lotId: string; readonly reason: string; readonly transactionId: string; readonly now: Date };
};

export type HoldCommand = HoldTokens | SettleHold | ReleaseHold | ExpireCredits | GrantTokens | VoidGrant;
