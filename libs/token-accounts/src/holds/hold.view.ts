import type { ReadModelConsistency, Written } from '@app/event-sourcing';
import { formatPosition } from '@app/event-store';
import { invariant, type TokenAccountEvent } from '@app/ledger';

/** The account's totals after a write: the balance, what holds set aside, and what is left to spend. */
export type AccountTotals = { readonly balance: number; readonly held: number; readonly available: number };

/** Where a write stands: its position in `$all`, and whether the read models already show it. */
export type WriteTrace = { readonly position: string | null; readonly readModelUpToDate: boolean };

/**
 * The totals the command's last event records (a replayed request's too: they are its first
 * attempt's events), so the answer is that of the write, not of whatever came after it.
 */
export function totalsAfter(events: readonly TokenAccountEvent[]): AccountTotals {
  const last = [...events].reverse().find((event) => 'balanceAfter' in event.data);
  invariant(last !== undefined && 'balanceAfter' in last.data, 'a write appended no event with the balance after it');
  const held = last.data.heldAfter ?? 0;
  return { balance: last.data.balanceAfter, held, available: last.data.balanceAfter - held };
}

export async function writeTrace(written: Written, consistency: ReadModelConsistency): Promise<WriteTrace> {
  const { position } = written;
  return {
    position: position === undefined ? null : formatPosition(position),
    readModelUpToDate: await consistency.waitFor(position, { committedWithAppend: written.readModelsCommitted === true }),
  };
}
