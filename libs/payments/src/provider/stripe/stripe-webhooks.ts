import Stripe from 'stripe';
import { PaymentsError } from '../../payments.errors.js';

/** What a Stripe event asks of the ledger: capture (an authorised PaymentIntent, with auto-capture), or reconcile the payment with Stripe. */
export type StripeEventAction = 'capture' | 'reconcile';

/** The event types that concern a payment of ours, and what each one asks; others are answered 2xx and ignored. */
const ACTIONS: Readonly<Record<string, StripeEventAction>> = {
  'payment_intent.amount_capturable_updated': 'capture',
  'payment_intent.succeeded': 'reconcile',
  'payment_intent.payment_failed': 'reconcile',
  'payment_intent.canceled': 'reconcile',
  'charge.captured': 'reconcile',
  'charge.refunded': 'reconcile',
  'charge.refund.updated': 'reconcile',
  'refund.created': 'reconcile',
  'refund.updated': 'reconcile',
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A verified event that concerns a payment of ours. */
export type StripeNotification = { readonly eventId: string; readonly type: string; readonly action: StripeEventAction; readonly paymentId: string };

/**
 * Stripe's webhook deliveries: the signature checked by the SDK over the raw body (Stripe's scheme,
 * `t=…,v1=…`, within the tolerance), then the payment found through the PaymentIntent's metadata
 * (`paymentId`, set when we created it). A charge or refund event names its PaymentIntent, which is
 * read from Stripe for its metadata. Events of PaymentIntents without our metadata are not ours.
 */
export class StripeWebhooks {
  constructor(
    private readonly stripe: Stripe,
    private readonly secret: string,
    private readonly toleranceSeconds: number,
  ) {}

  /** The event, if its signature verifies; WEBHOOK_SIGNATURE_INVALID (401) otherwise, and nothing else happens. */
  verify(rawBody: Buffer | string | undefined, signature: string | readonly string[] | undefined): Stripe.Event {
    if (rawBody === undefined || typeof signature !== 'string') throw new PaymentsError('WEBHOOK_SIGNATURE_INVALID', 'a Stripe webhook needs its raw JSON body and one Stripe-Signature header');
    try {
      return this.stripe.webhooks.constructEvent(rawBody, signature, this.secret, this.toleranceSeconds);
    } catch (error) {
      if (error instanceof Stripe.errors.StripeSignatureVerificationError) throw new PaymentsError('WEBHOOK_SIGNATURE_INVALID', `Stripe-Signature does not verify: ${error.message}`);
      throw new PaymentsError('WEBHOOK_SIGNATURE_INVALID', `the Stripe webhook could not be read: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** The notification for a payment of ours, or undefined when the event is not about one. */
  async notificationOf(event: Stripe.Event): Promise<StripeNotification | undefined> {
    const action = ACTIONS[event.type];
    if (action === undefined) return undefined;
    const paymentId = await this.paymentIdOf(event.data.object as { object?: string; metadata?: Record<string, string>; payment_intent?: string | { id: string } | null });
    return paymentId === undefined ? undefined : { eventId: event.id, type: event.type, action, paymentId };
  }

  private async paymentIdOf(object: { object?: string; metadata?: Record<string, string>; payment_intent?: string | { id: string } | null }): Promise<string | undefined> {
    let metadata = object.object === 'payment_intent' ? object.metadata : undefined;
    if (metadata === undefined) {
      const intent = object.payment_intent;
      const intentId = typeof intent === 'string' ? intent : intent?.id;
      if (intentId === undefined) return undefined;
      metadata = (await this.stripe.paymentIntents.retrieve(intentId)).metadata;
    }
    const paymentId = metadata['paymentId']?.toLowerCase();
    return paymentId !== undefined && UUID.test(paymentId) ? paymentId : undefined;
  }
}
