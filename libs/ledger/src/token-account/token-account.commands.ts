import type { Metadata } from '../metadata.js';
import type { HoldCommand } from './hold.commands.js';
import type { PaymentCommand } from './payment.commands.js';
import type { RecordDispute } from './dispute.commands.js';

/**
 * Commands carry everything `decide` needs, including the time and the new transaction id, so that
 * deciding stays pure and repeatable.
 */
export type AddTokens = {
  readonly type: 'AddTokens';
  readonly data: {
    readonly userId: string;
    readonly paymentId: string;
    readonly amount: number;
    readonly description: string | null;
    readonly transactionId: string;
    readonly now: Date;
    /**
     * The most this one purchase may credit, when the caller is capped below TOKEN_AMOUNT_MAX (a
     * purchase a service records directly: PURCHASE_TOKENS_MAX). Absent: TOKEN_AMOUNT_MAX.
     */
    readonly amountMax?: number;
  };
};

export type UseTokens = {
  readonly type: 'UseTokens';
  readonly data: {
    readonly userId: string;
    readonly amount: number;
    readonly description: string | null;
    /** The caller's metadata, stored in the event; null or absent: none. */
    readonly metadata?: Metadata | null;
    readonly transactionId: string;
    readonly now: Date;
  };
};

/** An admin's correction: `amount` is signed (a credit or a debit, never 0) and `reason` is required. */
export type AdjustTokens = {
  readonly type: 'AdjustTokens';
  readonly data: {
    readonly userId: string;
    readonly amount: number;
    readonly reason: string;
    readonly transactionId: string;
    readonly now: Date;
  };
};

export type TokenAccountCommand = AddTokens | UseTokens | AdjustTokens | PaymentCommand | HoldCommand | RecordDispute;
