import { systemActor } from '@app/event-sourcing';
import type { Pool } from 'pg';
import type { PaymentWorkflow } from '../payment-workflow.js';
import { keysetPages } from '@app/database';

/** Due payments read per query; a run reads as many pages as there are due payments. */
export const EXPIRY_PAGE_SIZE = 100;

export type ExpiryRun = { readonly examined: number; readonly failed: number };

type DueRow = { readonly id: string; readonly user_id: string; readonly expires_at: string };

// Keyset on (expires_at, id); expires_at travels as text so no precision is lost between pages, and
// the page is ordered by the column, not by that text (which a bare ORDER BY expires_at would bind to).
const DUE_PAGE_SQL = `
  SELECT id::text, user_id::text, expires_at::text FROM payments
   WHERE status = 'PENDING' AND expires_at <= $1
     AND ($2::timestamptz IS NULL OR (expires_at, id) > ($2::timestamptz, $3::uuid))
   ORDER BY payments.expires_at, payments.id LIMIT $4`;

/**
 * Ends payments still PENDING after their expiry, asking the provider first: money it captured is
 * credited, a decline is recorded, the rest expire with 'Payment timed out'. It pages through every
 * due payment, not a first batch. The scheduler runs it in one process at a time (the
 * `payment-expiry` leadership); correctness does not rest on that: each decision is idempotent and
 * appended at an expected revision, so runs that overlap expire a payment once.
 */
export class PaymentExpiryJob {
  constructor(
    private readonly pool: Pool,
    private readonly workflow: PaymentWorkflow,
    private readonly onError: (paymentId: string, error: unknown) => void = () => undefined,
    private readonly pageSize: number = EXPIRY_PAGE_SIZE,
  ) {}

  /** One pass at time `now`. */
  async runOnce(now: Date): Promise<ExpiryRun> {
    const context = { requestId: `payment-expiry-${now.toISOString()}`, actor: systemActor('payment-expiry', 'job') };
    const pages = keysetPages<DueRow>(async (after, limit) => (await this.pool.query<DueRow>(DUE_PAGE_SQL, [now.toISOString(), after?.expires_at ?? null, after?.id ?? null, limit])).rows, this.pageSize);
    let examined = 0;
    let failed = 0;
    for await (const page of pages) {
      for (const { id, user_id: userId } of page) {
        examined += 1;
        try {
          // The read model may lag: decide on the stream's own state.
          const payment = (await this.workflow.stateOf(userId)).payments.get(id);
          if (payment?.status === 'PENDING') await this.workflow.reconcile(payment, context, now);
        } catch (error) {
          // One payment's provider or store failure must not stop the others; it is retried next run.
          failed += 1;
          this.onError(id, error);
        }
      }
    }
    return { examined, failed };
  }
}
