import type { ReadModelConsistency, Written } from '@app/event-sourcing';
import { formatPosition } from '@app/event-store';
import type { TransactionView } from '@app/projections';

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
