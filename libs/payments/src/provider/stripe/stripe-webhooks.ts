import Stripe from 'stripe';
import { PaymentsError } from '../../payments.errors.js';
import { providerErrorOf } from './stripe-payment-provider.js';
import type { ProviderDispute } from '../../record-dispute/record-dispute.flow.js';

/**
 * What a Stripe event asks of the ledger: capture (an authorised PaymentIntent, with auto-capture),
 * reconcile the payment with Stripe, or record the dispute the event carries.
 */
export type StripeEventAction = 'capture' | 'reconcile' | 'dispute';

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
  'refund.failed': 'reconcile',
  'charge.dispute.created': 'dispute',
  'charge.dispute.updated': 'dispute',
  'charge.dispute.closed': 'dispute',
};

/**
 * Stripe's dispute statuses as the ledger counts them: `lost` takes the tokens back; `won`, and an
 * inquiry closed without a chargeback (`warning_closed`) or a dispute prevented, move nothing; every
 * other status is still open.
 */
const DISPUTE_OUTCOMES: Readonly<Record<string, 'won' | 'lost'>> = { won: 'won', warning_closed: 'won', prevented: 'won', lost: 'lost' };

/**
 * An inquiry (a retrieval request, Stripe's `warning_*` statuses) is not a chargeback: no money has
 * left, and Stripe lets the charge be refunded meanwhile (`is_charge_refundable`), which is how a
 * merchant heads a chargeback off. The ledger records nothing for an open one, so a refund goes on;
 * should it escalate, Stripe moves the same dispute to `needs_response`, whose event opens it. One
 * that closes (`warning_closed`) is recorded as won, which also closes an inquiry recorded open
 * before 6 December.
 */
const OPEN_INQUIRY_STATUSES: ReadonlySet<string> = new Set(['warning_needs_response', 'warning_under_review']);

/** Whether Stripe's dispute status is an open inquiry, for which the ledger records nothing. */
export function isOpenInquiry(status: string): boolean {
  return OPEN_INQUIRY_STATUSES.has(status);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A verified event that concerns a payment of ours; a dispute event carries the dispute as Stripe reported it. */
export type StripeNotification = {
  readonly eventId: string;
  readonly type: string;
  readonly action: StripeEventAction;
  readonly paymentId: string;
  /** A dispute event's: the dispute as Stripe has it now, and its PaymentIntent (the payment's order, unless the metadata was copied onto another). */
  readonly dispute?: ProviderDispute;
  readonly orderId?: string;
};

type EventObject = { id?: string; object?: string; metadata?: Record<string, string>; payment_intent?: string | { id: string } | null; charge?: string | { id: string } | null };

/**
 * Stripe's webhook deliveries: the signature checked by the SDK over the raw body (Stripe's scheme,
 * `t=…,v1=…`, within the tolerance), then the payment found through the PaymentIntent's metadata
 * (`paymentId`, set when we created it). A charge or refund event names its PaymentIntent, which is
 * read from Stripe for its metadata; a dispute event's dispute is read from Stripe too. Events of
 * PaymentIntents without our metadata are not ours.
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
    let event: Stripe.Event;
    try {
      event = this.stripe.webhooks.constructEvent(rawBody, signature, this.secret, this.toleranceSeconds);
    } catch (error) {
      if (error instanceof Stripe.errors.StripeSignatureVerificationError) throw new PaymentsError('WEBHOOK_SIGNATURE_INVALID', `Stripe-Signature does not verify: ${error.message}`);
      throw new PaymentsError('WEBHOOK_SIGNATURE_INVALID', `the Stripe webhook could not be read: ${error instanceof Error ? error.message : String(error)}`);
    }
    // The SDK checks only how old the signed timestamp is; one from the future is refused here as the
    // mock's route refuses it, so a signature is good for the tolerance around its time, not longer.
    const ahead = signedAt(signature) - Math.floor(Date.now() / 1000);
    if (ahead > this.toleranceSeconds) throw new PaymentsError('WEBHOOK_SIGNATURE_INVALID', `Stripe-Signature's timestamp is ${ahead} s ahead of this server's clock, past the tolerance of ${this.toleranceSeconds} s`);
    return event;
  }

  /** The notification for a payment of ours, or undefined when the event is not about one. */
  async notificationOf(event: Stripe.Event): Promise<StripeNotification | undefined> {
    const action = ACTIONS[event.type];
    if (action === undefined) return undefined;
    const object = event.data.object as EventObject;
    const intent = await this.intentOf(object);
    const paymentId = intent === undefined ? undefined : paymentIdIn(intent.metadata);
    if (intent === undefined || paymentId === undefined) return undefined;
    const notification = { eventId: event.id, type: event.type, action, paymentId };
    if (action !== 'dispute') return notification;
    // As for every event that moves money, the dispute is read from Stripe, not taken from the event.
    const disputeId = (object as { id?: unknown }).id;
    if (typeof disputeId !== 'string') throw new Error(`the Stripe dispute event ${event.id} names no dispute`);
    const dispute = await read(`read dispute ${disputeId}`, () => this.stripe.disputes.retrieve(disputeId));
    return isOpenInquiry(dispute.status) ? undefined : { ...notification, dispute: disputeOf(dispute), orderId: intent.id };
  }

  /** The PaymentIntent the event's object is or names (its id and metadata), read from Stripe unless the event carries it. */
  private async intentOf(object: EventObject): Promise<{ readonly id: string; readonly metadata: Record<string, string> } | undefined> {
    if (object.object === 'payment_intent') return object.id === undefined || object.metadata === undefined ? undefined : { id: object.id, metadata: object.metadata };
    let intent = object.payment_intent;
    // A dispute of an older API version names only its charge, whose PaymentIntent is read.
    const charge = typeof object.charge === 'string' ? object.charge : object.charge?.id;
    if ((intent === undefined || intent === null) && object.object === 'dispute' && charge !== undefined) intent = (await read(`read charge ${charge}`, () => this.stripe.charges.retrieve(charge))).payment_intent;
    const intentId = typeof intent === 'string' ? intent : intent?.id;
    if (intentId === undefined) return undefined;
    const found = await read(`read PaymentIntent ${intentId}`, () => this.stripe.paymentIntents.retrieve(intentId));
    return { id: found.id, metadata: found.metadata };
  }
}

/**
 * A read of Stripe's for a webhook, its failure as every adapter call's is (PaymentProviderError: 502
 * PROVIDER_REJECTED or PROVIDER_UNAVAILABLE, 503 PROVIDER_RATE_LIMITED, logged, Stripe's text only in
 * the log): a key Stripe refuses must not answer Stripe's webhook with its own 401 or 403 and its
 * words, unlogged.
 */
async function read<T>(what: string, request: () => Promise<T>): Promise<T> {
  try {
    return await request();
  } catch (error) {
    throw error instanceof Stripe.errors.StripeError ? providerErrorOf(what, error) : error;
  }
}

/** The signed timestamp (`t=`) of a Stripe-Signature the SDK verified, in seconds, as the SDK reads it: the last `t=`, the one its signature covers. */
function signedAt(signature: string): number {
  const timestamp = signature
    .split(',')
    .filter((item) => item.split('=')[0] === 't')
    .at(-1)
    ?.split('=')[1];
  return timestamp === undefined ? Number.NaN : Number.parseInt(timestamp, 10);
}

/** Our payment id in a PaymentIntent's metadata (`paymentId`, set when we created it), or undefined when it is not ours. */
export function paymentIdIn(metadata: Readonly<Record<string, string>>): string | undefined {
  const paymentId = metadata['paymentId']?.toLowerCase();
  return paymentId !== undefined && UUID.test(paymentId) ? paymentId : undefined;
}

/** The ledger's view of a Stripe `Dispute` as Stripe has it now (API reference: Disputes): its id, where it stands, the money disputed and why. */
export function disputeOf(dispute: Stripe.Dispute): ProviderDispute {
  if (typeof dispute.id !== 'string' || !Number.isSafeInteger(dispute.amount) || dispute.amount < 1 || typeof dispute.currency !== 'string') {
    // Signed by Stripe, so not the sender's mistake to answer with a 4xx: a 500, which Stripe retries, and a log line.
    throw new Error(`Stripe reports a dispute that is not valid: ${JSON.stringify({ id: dispute.id, amount: dispute.amount, currency: dispute.currency })}`);
  }
  return { disputeId: dispute.id, status: DISPUTE_OUTCOMES[dispute.status] ?? 'open', amount: dispute.amount, currency: dispute.currency.toUpperCase(), reason: String(dispute.reason) };
}
