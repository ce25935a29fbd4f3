import Stripe from 'stripe';
import type { ProviderRefunds, ReportedRefund } from '../payment-provider.port.js';
import { providerErrorOf } from './stripe-payment-provider.js';
import { paymentIntentBehind } from './stripe-dispute-list.js';
import { paymentIdIn } from './stripe-webhooks.js';

/** Refunds read per page (Stripe's largest). */
const PAGE_SIZE = 100;

/**
 * Stripe's refunds created since a time, for the reconciliation job: `GET /v1/refunds` with
 * `created[gte]`, every page (the SDK's auto-pagination, newest first), each refund's PaymentIntent
 * and charge expanded so its metadata names our payment without a call per refund. A refund that
 * names only its charge has that charge's PaymentIntent read. Only refunds that succeeded and left
 * their charge refunded whole: a pending one is not the money back yet (a later run lists it again
 * while it is within the sweep's look-back), a failed or canceled one returned nothing, and one of
 * part of a charge changes nothing in the ledger (ADR 0021).
 * Refunds of PaymentIntents without our metadata are not ours.
 */
export class StripeRefundList implements ProviderRefunds {
  constructor(private readonly stripe: Stripe) {}

  async refundsSince(since: Date): ReturnType<ProviderRefunds['refundsSince']> {
    const refunds: ReportedRefund[] = [];
    const failures: { refundId: string; error: unknown }[] = [];
    try {
      const pages = this.stripe.refunds.list({ created: { gte: Math.floor(since.getTime() / 1000) }, limit: PAGE_SIZE, expand: ['data.payment_intent', 'data.charge'] });
      for await (const refund of pages) {
        // Of part of a charge that stays partly captured: not mirrored (ADR 0021), and compared every run for nothing.
        if (refund.status !== 'succeeded' || (typeof refund.charge === 'object' && refund.charge !== null && !refund.charge.refunded)) continue;
        try {
          const intent = await paymentIntentBehind(this.stripe, refund);
          const paymentId = intent === undefined ? undefined : paymentIdIn(intent.metadata);
          if (intent !== undefined && paymentId !== undefined) refunds.push({ paymentId, orderId: intent.id, refundId: refund.id });
        } catch (error) {
          // This refund alone: the next run reads it again.
          failures.push({ refundId: refund.id, error: error instanceof Stripe.errors.StripeError ? providerErrorOf(`read refund ${refund.id}'s PaymentIntent`, error) : error });
        }
      }
    } catch (error) {
      throw error instanceof Stripe.errors.StripeError ? providerErrorOf('list the refunds', error) : error;
    }
    return { refunds, failures };
  }

}
