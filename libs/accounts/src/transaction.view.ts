import { formatPosition, type Position } from '@app/event-store';
import type { ReadModelConsistency } from './read-model-consistency.js';

export type TransactionType = 'purchase' | 'usage' | 'refund' | 'adjustment';

/** A `token_transactions` row as the API shows it. `amount` is signed: negative for usage. */
export type TransactionView = {
  readonly id: string;
  readonly userId: string;
  readonly amount: number;
  readonly transactionType: TransactionType;
  readonly description: string | null;
  readonly paymentId: string | null;
  readonly balanceAfter: number;
  readonly createdAt: string;
};

/** What a write returns: the decided outcome, and whether the read models already show it. */
export type LedgerWriteResult = {
  readonly userId: string;
  readonly balance: number;
  readonly transaction: TransactionView;
  /** `$all` position of the write, as `commit/prepare`. */
  readonly position: string | null;
  readonly readModelUpToDate: boolean;
};

/** Where a write landed, and whether its read-model rows committed with it (`HandledCommand` is one). */
export type Written = { readonly position: Position | undefined; readonly readModelsCommitted?: boolean };

/** A write's result: the decided transaction and balance, answered once the read models show it (or the wait timed out). */
export async function ledgerWriteResult(transaction: TransactionView, written: Written, consistency: ReadModelConsistency): Promise<LedgerWriteResult> {
  const { position } = written;
  return {
    userId: transaction.userId,
    balance: transaction.balanceAfter,
    transaction,
    position: position === undefined ? null : formatPosition(position),
    readModelUpToDate: await consistency.waitFor(position, { committedWithAppend: written.readModelsCommitted === true }),
  };
}
