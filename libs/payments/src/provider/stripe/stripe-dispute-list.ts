import Stripe from 'stripe';
import type { ProviderDisputes, ReportedDispute } from '../payment-provider.port.js';
import { providerErrorOf } from './stripe-payment-provider.js';
import { disputeOf, isOpenInquiry, paymentIdIn } from './stripe-webhooks.js';

/** Disputes read per page (Stripe's largest). */
const PAGE_SIZE = 100;

/**
 * Stripe's disputes created since a time, for the reconciliation job: `GET /v1/disputes` with
 * `created[gte]`, every page (the SDK's auto-pagination, newest first), each dispute's PaymentIntent
 * expanded so its metadata names our payment without a call per dispute. A dispute of an older API
 * version names only its charge, whose PaymentIntent is read. Disputes of PaymentIntents without our
 * metadata are not ours, and open inquiries are left out, as the webhooks leave them (`StripeWebhooks`).
 */
export class StripeDisputeList implements ProviderDisputes {
  constructor(private readonly stripe: Stripe) {}

  async disputesSince(since: Date): ReturnType<ProviderDisputes['disputesSince']> {
    const disputes: ReportedDispute[] = [];
    const failures: { disputeId: string; error: unknown }[] = [];
    try {
      const pages = this.stripe.disputes.list({ created: { gte: Math.floor(since.getTime() / 1000) }, limit: PAGE_SIZE, expand: ['data.payment_intent'] });
      for await (const dispute of pages) {
        if (isOpenInquiry(dispute.status)) continue;
        try {
          const intent = await this.intentOf(dispute);
          const paymentId = intent === undefined ? undefined : paymentIdIn(intent.metadata);
          if (intent !== undefined && paymentId !== undefined) disputes.push({ paymentId, orderId: intent.id, dispute: disputeOf(dispute) });
        } catch (error) {
          // This dispute alone: the next run reads it again.
          failures.push({ disputeId: dispute.id, error: error instanceof Stripe.errors.StripeError ? providerErrorOf(`read dispute ${dispute.id}'s PaymentIntent`, error) : error });
        }
      }
    } catch (error) {
      throw error instanceof Stripe.errors.StripeError ? providerErrorOf('list the disputes', error) : error;
    }
    return { disputes, failures };
  }

  private intentOf(dispute: Stripe.Dispute): Promise<Stripe.PaymentIntent | undefined> {
    return paymentIntentBehind(this.stripe, dispute);
  }
}

/**
 * The PaymentIntent a dispute or a refund is of: the one it names (expanded, or read), else its
 * charge's (an object of an older API version names only its charge); undefined when there is none.
 */
export async function paymentIntentBehind(
  stripe: Stripe,
  of: { readonly payment_intent: string | Stripe.PaymentIntent | null; readonly charge: string | Stripe.Charge | null },
): Promise<Stripe.PaymentIntent | undefined> {
  let intent = of.payment_intent;
  if (intent === null) {
    if (of.charge === null) return undefined;
    const charge = typeof of.charge === 'string' ? await stripe.charges.retrieve(of.charge) : of.charge;
    intent = charge.payment_intent;
  }
  if (intent === null) return undefined;
  return typeof intent === 'string' ? await stripe.paymentIntents.retrieve(intent) : intent;
}
