import { tokenAccountDecider, tokenAccountStreamId } from '@app/ledger';
import { systemActor, type CommandHandling } from '@app/accounts';
import type { Pool } from 'pg';
import type { PaymentWorkflow } from '../payment-workflow.js';

/** Arbitrary, fixed: the advisory lock every instance's expiry job takes (pg_try_advisory_lock). */
export const PAYMENT_EXPIRY_LOCK_KEY = 764_000_010;
export const EXPIRY_BATCH_SIZE_MAX = 100;

export type ExpiryRun = { readonly ran: boolean; readonly examined: number; readonly failed: number };

/**
 * Ends payments still PENDING after their expiry, asking the provider first: money it captured is
 * credited, a decline is recorded, the rest expire with 'Payment timed out'. Safe with several
 * instances: a session advisory lock lets one instance work at a time (the others skip the run),
 * and even without it each decision is idempotent and appended at an expected revision, so a
 * payment is expired once.
 */
export class PaymentExpiryJob {
  constructor(
    private readonly pool: Pool,
    private readonly workflow: PaymentWorkflow,
    private readonly commands: CommandHandling,
    private readonly onError: (paymentId: string, error: unknown) => void = () => undefined,
  ) {}

  /** One pass at time `now`; `ran` is false when another instance held the lock. */
  async runOnce(now: Date, options: { readonly lock: boolean } = { lock: true }): Promise<ExpiryRun> {
    const client = await this.pool.connect();
    // The lock belongs to this session: if unlocking fails, the connection is closed rather than
    // returned to the pool still holding it (which would make every instance skip every run).
    let broken: Error | undefined;
    try {
      if (options.lock) {
        const locked = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [PAYMENT_EXPIRY_LOCK_KEY]);
        if (locked.rows[0]?.locked !== true) return { ran: false, examined: 0, failed: 0 };
      }
      try {
        return { ran: true, ...(await this.expireDue(client, now)) };
      } finally {
        if (options.lock) {
          await client.query('SELECT pg_advisory_unlock($1)', [PAYMENT_EXPIRY_LOCK_KEY]).catch((error: unknown) => {
            broken = error instanceof Error ? error : new Error(String(error));
          });
        }
      }
    } finally {
      client.release(broken);
    }
  }

  private async expireDue(client: { query: Pool['query'] }, now: Date): Promise<{ examined: number; failed: number }> {
    const due = await client.query<{ id: string; user_id: string }>(
      `SELECT id, user_id FROM payments WHERE status = 'PENDING' AND expires_at <= $1 ORDER BY expires_at LIMIT $2`,
      [now.toISOString(), EXPIRY_BATCH_SIZE_MAX],
    );
    let failed = 0;
    for (const { id, user_id: userId } of due.rows) {
      try {
        // The read model may lag: decide on the stream's own state.
        const { state } = await this.commands.load(tokenAccountStreamId(userId), tokenAccountDecider);
        const payment = state.payments.get(id);
        if (payment?.status === 'PENDING') await this.workflow.settle(payment, { requestId: `payment-expiry-${now.toISOString()}`, actor: systemActor('payment-expiry', 'job') }, now);
      } catch (error) {
        // One payment's provider or store failure must not stop the others; it is retried next run.
        failed += 1;
        this.onError(id, error);
      }
    }
    return { examined: due.rows.length, failed };
  }
}
