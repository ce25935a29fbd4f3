import { randomUUID } from 'node:crypto';
import { decideTokenAccountWithState, tokenAccountDecider, tokenAccountStreamId } from '@app/ledger';
import { eventMetadata, systemActor, type CommandHandling } from '@app/event-sourcing';
import type { Pool } from 'pg';

/** Accounts examined per page; a run pages through every account with something due. */
export const CREDIT_EXPIRY_PAGE_SIZE = 100;
/** Pages per run: the rest waits for the next run. */
export const CREDIT_EXPIRY_PAGES_MAX = 100;

/**
 * A page of the accounts with a hold or a lot due at $1, after the account $2: each side read from
 * its partial index (active holds by expiry; lots with tokens left and an expiry), so a run reads
 * what is due, not every hold or lot that ever ended.
 */
export const DUE_ACCOUNTS_SQL = `SELECT user_id FROM (
           SELECT user_id FROM token_holds WHERE status = 'active' AND expires_at <= $1
           UNION
           SELECT user_id FROM token_lots WHERE has_remaining AND expires_at <= $1) AS due
          WHERE user_id > $2 ORDER BY user_id LIMIT $3`;

export type CreditExpiryRun = { readonly examined: number; readonly expired: number; readonly failed: number };

/**
 * Appends the expiries due at `now` (holds past `expiresAt`: `HoldExpired`; lot remainders past
 * theirs: `LotExpired`) to each account that has any, so the read models show them; decisions made
 * after the instant already leave them out. Accounts are found in the read models and paged by user
 * id; the decision is the stream's own (`ExpireCredits`), so a lagging read model, an account a
 * command already swept, or two processes running at once (a leadership hand-over, a manual run)
 * append each expiry once: the append is at an expected revision, and a repeat decides nothing.
 */
export class CreditExpiryJob {
  constructor(
    private readonly pool: Pool,
    private readonly commands: CommandHandling,
    private readonly onError: (userId: string, error: unknown) => void = () => undefined,
  ) {}

  async runOnce(now: Date): Promise<CreditExpiryRun> {
    let after = '00000000-0000-0000-0000-000000000000';
    let examined = 0;
    let expired = 0;
    let failed = 0;
    for (let page = 0; page < CREDIT_EXPIRY_PAGES_MAX; page += 1) {
      const due = await this.pool.query<{ user_id: string }>(
        DUE_ACCOUNTS_SQL,
        [now.toISOString(), after, CREDIT_EXPIRY_PAGE_SIZE],
      );
      for (const { user_id: userId } of due.rows) {
        try {
          expired += await this.expire(userId, now);
        } catch (error) {
          // One account's failure must not stop the others; it is retried next run.
          failed += 1;
          this.onError(userId, error);
        }
      }
      examined += due.rows.length;
      const last = due.rows[due.rows.length - 1];
      if (last === undefined || due.rows.length < CREDIT_EXPIRY_PAGE_SIZE) break;
      after = last.user_id;
    }
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
