import { formatPosition, type Position } from '@app/event-store';
import type { TransactionView } from '@app/projections';
import type { ReadModelConsistency } from './read-model-consistency.js';

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
