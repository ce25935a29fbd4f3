import { randomUUID } from 'node:crypto';
import { decideTokenAccountWithState, tokenAccountDecider, tokenAccountStreamId } from '@app/ledger';
import { eventMetadata, systemActor, type CommandHandling } from '@app/event-sourcing';
import type { Pool } from 'pg';

/** Accounts examined per page. */
export const CREDIT_EXPIRY_PAGE_SIZE = 100;
/** Pages per run: the rest waits for the next run, which starts where this one stopped. */
export const CREDIT_EXPIRY_PAGES_MAX = 100;

/**
 * A page of the accounts with a hold or a lot due at $1, after the account $2 (from the first when
 * $2 is null: the nil UUID is a valid account id, so no id can stand for "before all"): each side read from
 * its partial index (active holds by expiry; lots with tokens left and an expiry), so a run reads what
 * is due, not every hold or lot that ever ended. (An upper bound on the account here made the planner
 * read lots by account instead, ended ones included; a wrapped-around lap stops in code.)
 *
 * A lot past its expiry is due only when some of what it has left is free: not while live holds and
 * its purchase's pending refund reserve all of it, where the decision records nothing (its tokens
 * expire when the hold or the refund lets them go, in that append). Such an account would otherwise
 * be loaded on every run for as long as the refund stays pending (days, weeks under a dispute), as
 * GET .../balance already knows (BALANCE_SQL's same test).
 */
export const DUE_ACCOUNTS_SQL = `SELECT user_id FROM (
           SELECT user_id FROM token_holds WHERE status = 'active' AND expires_at <= $1
           UNION
           SELECT user_id FROM token_lots WHERE has_remaining AND expires_at <= $1
              AND remaining > (SELECT coalesce(sum((draw->>'amount')::bigint), 0) FROM token_holds, jsonb_array_elements(token_holds.draws) AS draw
                                WHERE token_holds.user_id = token_lots.user_id AND token_holds.status = 'active' AND token_holds.expires_at > $1 AND draw->>'lotId' = token_lots.lot_id)
                            + (SELECT coalesce(sum(tokens_purchased), 0) FROM payments
                                WHERE payments.id = token_lots.payment_id AND payments.user_id = token_lots.user_id AND payments.status = 'REFUND_PENDING')) AS due
          WHERE ($2::uuid IS NULL OR user_id > $2) ORDER BY user_id LIMIT $3`;

export type CreditExpiryRun = { readonly examined: number; readonly expired: number; readonly failed: number };

export type CreditExpiryLimits = { readonly pageSize: number; readonly pagesMax: number };

/**
 * Appends the expiries due at `now` (holds past `expiresAt`: `HoldExpired`; lot remainders past
 * theirs: `LotExpired`) to each account that has any, so the read models show them; decisions made
 * after the instant already leave them out. Accounts are found in the read models and paged by user
 * id; the decision is the stream's own (`ExpireCredits`), so a lagging read model, an account a
 * command already swept, or two processes running at once (a leadership hand-over, a manual run)
 * append each expiry once: the append is at an expected revision, and a repeat decides nothing.
 *
 * Some accounts stay due while nothing can be recorded for them: one whose decision fails (its
 * stream conflicts on every try, or cannot be read) until it succeeds. So a run that stops at its
 * page limit is resumed by the next run after the last account it examined, wrapping around to the
 * first, rather than starting over: with more such accounts than a run examines, the accounts after
 * them are still reached.
 */
export class CreditExpiryJob {
  /** The last account the previous run examined; null: start at the first. */
  private resumeAfter: string | null = null;

  constructor(
    private readonly pool: Pool,
    private readonly commands: CommandHandling,
    private readonly onError: (userId: string, error: unknown) => void = () => undefined,
    private readonly limits: CreditExpiryLimits = { pageSize: CREDIT_EXPIRY_PAGE_SIZE, pagesMax: CREDIT_EXPIRY_PAGES_MAX },
  ) {}

  async runOnce(now: Date): Promise<CreditExpiryRun> {
    // From where the last run stopped to the last account, then (wrapped) from the first up to there.
    const start = this.resumeAfter;
    let after = start;
    let wrapped = false;
    let examined = 0;
    let expired = 0;
    let failed = 0;
    for (let page = 0; page < this.limits.pagesMax; page += 1) {
      const rows = (await this.pool.query<{ user_id: string }>(DUE_ACCOUNTS_SQL, [now.toISOString(), after, this.limits.pageSize])).rows;
      const due = wrapped && start !== null ? rows.filter((row) => row.user_id <= start) : rows;
      for (const { user_id: userId } of due) {
        try {
          expired += await this.expire(userId, now);
        } catch (error) {
          // One account's failure must not stop the others; it is retried next run.
          failed += 1;
          this.onError(userId, error);
        }
      }
      examined += due.length;
      const last = due[due.length - 1];
      if (last !== undefined && due.length === this.limits.pageSize) {
        after = last.user_id;
        continue;
      }
      // The lap is done: the whole range when it began at the first account or has wrapped already.
      after = null;
      if (wrapped || start === null) break;
      wrapped = true;
    }
    this.resumeAfter = after;
    return { examined, expired, failed };
  }

  private async expire(userId: string, now: Date): Promise<number> {
    const command = { type: 'ExpireCredits', data: { userId, transactionId: randomUUID(), now } } as const;
    const handled = await this.commands.handle({
      streamId: tokenAccountStreamId(userId),
      decider: tokenAccountDecider,
      decide: (state) => decideTokenAccountWithState(command, state),
      metadata: eventMetadata({ actor: systemActor('credit-expiry', 'job'), requestId: `credit-expiry-${now.toISOString()}` }),
    });
    return handled.events.length;
  }
}
