import type { Pool } from 'pg';
import { NO_FAULTS, type PaymentFaults } from '../payment-faults.js';

/** How long a processed delivery is remembered: far longer than the longest signature tolerance (1 hour). */
export const WEBHOOK_DELIVERY_RETENTION_HOURS = 24;

/** A provider notification: which provider sent it and its event id (the same on each of its retries). */
export type WebhookDelivery = { readonly provider: string; readonly eventId: string };

/**
 * The provider notifications already processed. A delivery is recorded after it was processed, so
 * one that failed (and is retried by the provider) is processed again; two copies racing may both be
 * processed, which is harmless: processing only reconciles the payment with the provider.
 */
export class WebhookDeliveries {
  constructor(
    private readonly pool: Pool,
    private readonly faults: PaymentFaults = NO_FAULTS,
  ) {}

  async processed(delivery: WebhookDelivery): Promise<boolean> {
    const found = await this.pool.query('SELECT 1 FROM payment_webhook_deliveries WHERE provider = $1 AND event_id = $2', [delivery.provider, delivery.eventId]);
    return found.rowCount === 1;
  }

  /** Records the delivery, and forgets those older than the retention (a replay of those is refused by its timestamp). */
  async record(delivery: WebhookDelivery, paymentId: string): Promise<void> {
    // The delivery's work is done (recorded in the ledger, or found done): a crash here leaves the provider to send it again.
    this.faults('webhook:before-delivery-record');
    await this.pool.query('INSERT INTO payment_webhook_deliveries (provider, event_id, payment_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [delivery.provider, delivery.eventId, paymentId]);
    await this.pool.query(`DELETE FROM payment_webhook_deliveries WHERE processed_at < now() - make_interval(hours => $1)`, [WEBHOOK_DELIVERY_RETENTION_HOURS]);
  }
}
