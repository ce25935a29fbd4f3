import { LedgerError } from '@app/ledger';
import type { Pool } from 'pg';

/**
 * payment id -> user id: which account a payment belongs to, across all accounts (a stream knows only
 * its own). Claimed before the payment's first event is appended, by a provider payment's initiation
 * and by a direct purchase, so one payment id credits one account however many requests race for it;
 * capture, refund and GET by payment id resolve the stream here rather than from the `payments` read
 * model, which may lag behind the append. A claim whose append never happened (a crash in between)
 * stays its account's: that account's retry credits the payment, any other is refused.
 */
export class PaymentStreams {
  constructor(private readonly pool: Pool) {}

  /**
   * Idempotent for the same user (a retried request); a payment id claimed by another user is 409
   * PAYMENT_ID_REUSED, and so is one the purchase history shows credited to another account without
   * a claim (by a version before claims, during a rolling deploy). One statement: the conflict
   * update locks and returns the owner's row, committed by a racing request or not.
   */
  async record(paymentId: string, userId: string): Promise<void> {
    const claimed = await this.pool.query<{ user_id: string }>(
      `INSERT INTO payment_streams (payment_id, user_id)
       SELECT $1, $2 WHERE NOT EXISTS (
         SELECT 1 FROM token_transactions WHERE payment_id = $1 AND transaction_type = 'purchase' AND user_id <> $2)
       ON CONFLICT (payment_id) DO UPDATE SET user_id = payment_streams.user_id
       RETURNING user_id`,
      [paymentId, userId],
    );
    if (claimed.rows[0]?.user_id !== userId) throw new LedgerError('PAYMENT_ID_REUSED', `payment ${paymentId} belongs to another account`, { paymentId });
  }

  async userOf(paymentId: string): Promise<string | undefined> {
    const result = await this.pool.query<{ user_id: string }>('SELECT user_id FROM payment_streams WHERE payment_id = $1', [paymentId]);
    return result.rows[0]?.user_id;
  }
}
