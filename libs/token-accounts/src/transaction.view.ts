import type { ReadModelConsistency, Written } from '@app/event-sourcing';
import { formatPosition } from '@app/event-store';
import type { TransactionView } from '@app/projections';
import type { TokenAccountEvent } from '@app/ledger';

/** What a write returns: the decided outcome, and whether the read models already show it. */
export type LedgerWriteResult = {
  readonly userId: string;
  readonly balance: number;
  readonly transaction: TransactionView;
  /** `$all` position of the write, as `commit/prepare`. */
  readonly position: string | null;
  readonly readModelUpToDate: boolean;
};

/**
 * A write's result: the decided transaction and the balance the write left (after the events decided
 * with it: a credit that paid off a dispute shortfall leaves less than its own row's balanceAfter;
 * ADR 0024), answered once the read models show it (or the wait timed out). A write that decided
 * nothing (a repeat) answers `repeatedBalance`, the balance its first answer gave (by default the
 * transaction's).
 */
export async function ledgerWriteResult(
  transaction: TransactionView,
  written: Written & { readonly events: readonly TokenAccountEvent[] },
  consistency: ReadModelConsistency,
  repeatedBalance: number = transaction.balanceAfter,
): Promise<LedgerWriteResult> {
  const { position } = written;
  const last = [...written.events].reverse().find((event) => 'balanceAfter' in event.data);
  return {
    userId: transaction.userId,
    balance: last !== undefined && 'balanceAfter' in last.data ? last.data.balanceAfter : repeatedBalance,
    transaction,
    position: position === undefined ? null : formatPosition(position),
    readModelUpToDate: await consistency.waitFor(position, { committedWithAppend: written.readModelsCommitted === true }),
  };
}
