import { tokenAccountDecider, tokenAccountStreamId } from '@app/ledger';
import { systemActor, type CommandHandling } from '@app/event-sourcing';
import type { Pool } from 'pg';
import type { PaymentWorkflow } from '../payment-workflow.js';

export const EXPIRY_BATCH_SIZE_MAX = 100;

export type ExpiryRun = { readonly examined: number; readonly failed: number };

/**
 * Ends payments still PENDING after their expiry, asking the provider first: money it captured is
 * credited, a decline is recorded, the rest expire with 'Payment timed out'. The scheduler runs it in
 * one process at a time (the `payment-expiry` leadership); correctness does not rest on that: each
 * decision is idempotent and appended at an expected revision, so runs that overlap (two leaders for
 * a moment, a manual run) expire a payment once.
 */
export class PaymentExpiryJob {
  constructor(
    private readonly pool: Pool,
    private readonly workflow: PaymentWorkflow,
    private readonly commands: CommandHandling,
    private readonly onError: (paymentId: string, error: unknown) => void = () => undefined,
  ) {}

  /** One pass at time `now`. */
  async runOnce(now: Date): Promise<ExpiryRun> {
    const due = await this.pool.query<{ id: string; user_id: string }>(
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
