import type { CommandHandling, HandledCommand, ReadModelConsistency, Written } from '@app/event-sourcing';
import { formatPosition } from '@app/event-store';
import { holdWithoutActive, invariant, LedgerError, tokenAccountDecider, tokenAccountStreamId, type TokenAccountEvent, type TokenAccountState } from '@app/ledger';
import type { Pool } from 'pg';
import { availableAfterRefunds } from '../get-balance/get-balance.query.js';

/** The account's totals after a write: the balance, what holds set aside, and what is left to spend. */
export type AccountTotals = { readonly balance: number; readonly held: number; readonly available: number };

/** Where a write stands: its position in `$all`, and whether the read models already show it. */
export type WriteTrace = { readonly position: string | null; readonly readModelUpToDate: boolean };

/** The most events a replayed answer folds to find the state its first answer was given on. */
export const REPLAYED_STATE_EVENTS_MAX = 10_000;

/**
 * The totals the command's last event records (a replayed request's too: they are its first
 * attempt's events), so the answer is that of the write, not of whatever came after it. `available`
 * also leaves out what refunds in progress reserved, as the balance endpoint does: events do not
 * record it, the state after the command does. A replayed request's `state` is the stream's current
 * one, so its reservation is read from the state just after its first attempt's events (`stateAt`,
 * a read of the stream up to there, on this rare path): the first answer, whatever came after. Where
 * that would fold more than REPLAYED_STATE_EVENTS_MAX events, the reservation is left out (the
 * balance less held), rather than hold the request for a long stream's replay.
 */
export async function totalsAfter(
  userId: string,
  handled: HandledCommand<TokenAccountState, TokenAccountEvent>,
  commands: Pick<CommandHandling, 'stateAt'>,
): Promise<AccountTotals> {
  const last = [...handled.events].reverse().find((event) => 'balanceAfter' in event.data);
  invariant(last !== undefined && 'balanceAfter' in last.data, 'a write appended no event with the balance after it');
  const held = last.data.heldAfter ?? 0;
  let reserved = handled.state.reservedForRefunds;
  if (handled.replayed === true) {
    const then = await commands.stateAt(tokenAccountStreamId(userId), tokenAccountDecider, handled.attemptRevision, { eventsMax: REPLAYED_STATE_EVENTS_MAX });
    reserved = then?.reservedForRefunds ?? 0;
  }
  return { balance: last.data.balanceAfter, held, available: availableAfterRefunds(last.data.balanceAfter - held, reserved) };
}

export async function writeTrace(written: Written, consistency: ReadModelConsistency): Promise<WriteTrace> {
  const { position } = written;
  return {
    position: position === undefined ? null : formatPosition(position),
    readModelUpToDate: await consistency.waitFor(position, { committedWithAppend: written.readModelsCommitted === true }),
  };
}

/** How the account's hold list records a hold; no row for a hold the account never had. */
export const RECORDED_HOLD_SQL = 'SELECT status FROM token_holds WHERE user_id = $1 AND hold_id = $2';

/**
 * A settle's or release's refusal, told apart for holds the state no longer remembers: ended holds
 * leave the folded state past the newest ENDED_HOLDS_REMEMBERED_MAX, so the decider answers
 * HOLD_NOT_FOUND for an old settled, released or expired hold too. The hold list, written in the
 * append's transaction, shows every event the refusal was decided on; it says HOLD_NOT_ACTIVE with
 * how the hold ended (ADR 0020).
 */
export async function refusalOfEndedHold(pool: Pool, error: unknown, userId: string, holdId: string): Promise<never> {
  if (!(error instanceof LedgerError && error.code === 'HOLD_NOT_FOUND')) throw error;
  const recorded = await pool.query<{ status: string }>(RECORDED_HOLD_SQL, [userId, holdId]);
  throw holdWithoutActive(holdId, recorded.rows[0]?.status);
}
