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

/** A write's result: the decided transaction and balance, answered once the read models show it (or the wait timed out). */
export async function ledgerWriteResult(transaction: TransactionView, position: Position | undefined, consistency: ReadModelConsistency): Promise<LedgerWriteResult> {
  return {
    userId: transaction.userId,
    balance: transaction.balanceAfter,
    transaction,
    position: position === undefined ? null : formatPosition(position),
    readModelUpToDate: await consistency.waitFor(position),
  };
}
