import { invariant } from '@app/ledger';
import type { Pool } from 'pg';

/**
 * payment id -> user id, written before the payment's first event is appended. Capture, refund and
 * GET by payment id resolve the stream here rather than from the `payments` read model, which may
 * lag behind the append.
 */
export class PaymentStreams {
  constructor(private readonly pool: Pool) {}

  /** Idempotent: a retried request (same derived payment id) finds its row; another user's is refused. */
  async record(paymentId: string, userId: string): Promise<void> {
    await this.pool.query('INSERT INTO payment_streams (payment_id, user_id) VALUES ($1, $2) ON CONFLICT (payment_id) DO NOTHING', [paymentId, userId]);
    const owner = await this.userOf(paymentId);
    invariant(owner === userId, `payment ${paymentId} is already recorded for another user`);
  }

  async userOf(paymentId: string): Promise<string | undefined> {
    const result = await this.pool.query<{ user_id: string }>('SELECT user_id FROM payment_streams WHERE payment_id = $1', [paymentId]);
    return result.rows[0]?.user_id;
  }
}
