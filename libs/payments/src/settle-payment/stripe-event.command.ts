import { Inject, Logger } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { CommandContext } from '@app/event-sourcing';
import { LedgerError } from '@app/ledger';
import { PaymentWorkflow } from '../payment-workflow.js';
import { foreignDispute, type ProviderDispute } from '../record-dispute/record-dispute.flow.js';
import { PaymentsError } from '../payments.errors.js';
import { PAYMENTS_OPTIONS, STRIPE_WEBHOOKS, type PaymentsOptions } from '../payments.tokens.js';
import type { StripeWebhooks } from '../provider/stripe/stripe-webhooks.js';
import { WebhookDeliveries } from './webhook-deliveries.js';

/**
 * `ignored`: signed by Stripe but about nothing of ours; `duplicate`: this event id was processed
 * before; `refused`: the ledger did not do what the event asked for, and no redelivery would change
 * that: it refused the auto-capture before any money moved, or the PaymentIntent was captured in part
 * (an operator's case: nothing was credited, so nothing is captured and an open or won dispute takes
 * nothing). `unresolved`: the event was taken, and the payment disagrees with Stripe in a way no rule
 * settles (a refund that failed after it succeeded, a PaymentIntent captured in part): an operator
 * decides, and the reconciliation job reports it too.
 */
export type StripeEventOutcome = { readonly received: true; readonly duplicate: boolean; readonly ignored: boolean; readonly refused?: EventRefusal; readonly unresolved?: string };

/** Why the ledger recorded nothing for the event: the account's or the payment's state, not the delivery, is at fault. */
export type EventRefusal = { readonly code: (typeof REFUSALS_BEFORE_MONEY_MOVES)[number] | 'PAYMENT_CAPTURED_IN_PART'; readonly message: string };

/**
 * The ledger's refusals of a capture that are checked before the provider is asked to take the
 * money (`captureDecision`): the account would go past the largest balance, or has the most credit
 * lots it may have. Redelivering the event cannot change them; the account's next changes can.
 */
const REFUSALS_BEFORE_MONEY_MOVES = ['BALANCE_OUT_OF_RANGE', 'LOT_LIMIT_REACHED'] as const;

/** A Stripe webhook delivery: its exact bytes and its `Stripe-Signature`. */
export class HandleStripeEventCommand extends Command<StripeEventOutcome> {
  constructor(
    readonly rawBody: Buffer | string | undefined,
    readonly signature: string | readonly string[] | undefined,
    readonly context: CommandContext,
  ) {
    super();
  }
}

/**
 * Verifies the delivery, then, unless its event id was processed: an authorised PaymentIntent is
 * captured when STRIPE_AUTO_CAPTURE is on (the same capture as the client's, so the tokens are
 * credited once whichever comes first); every other event of ours reconciles the payment with
 * Stripe (asked, not taken from the event, so order and repeats do not matter); a dispute event is
 * recorded as Stripe reports the dispute now (by its id, so repeats and any order decide the same). The delivery is
 * recorded after its effect is committed, and the answer (2xx) follows that: a failure is a 5xx, or
 * the 4xx of a refusal that a later state of the account may lift, which Stripe retries; a refusal no
 * redelivery can change is answered 2xx with `refused`.
 */
@CommandHandler(HandleStripeEventCommand)
export class HandleStripeEventHandler implements ICommandHandler<HandleStripeEventCommand> {
  private readonly logger = new Logger('StripeWebhooks');

  constructor(
    private readonly workflow: PaymentWorkflow,
    private readonly deliveries: WebhookDeliveries,
    @Inject(STRIPE_WEBHOOKS) private readonly webhooks: StripeWebhooks | null,
    @Inject(PAYMENTS_OPTIONS) private readonly options: PaymentsOptions,
  ) {}

  async execute({ rawBody, signature, context }: HandleStripeEventCommand): Promise<StripeEventOutcome> {
    if (this.webhooks === null) throw new PaymentsError('PROVIDER_NOT_CONFIGURED', `this service's payment provider is ${this.options.provider}, not stripe`);
    const event = this.webhooks.verify(rawBody, signature);
    const delivery = { provider: 'stripe', eventId: event.id };
    if (await this.deliveries.processed(delivery)) return { received: true, duplicate: true, ignored: false };
    const notification = await this.webhooks.notificationOf(event);
    const payment = notification === undefined ? undefined : await this.workflow.findPayment(notification.paymentId);
    if (notification === undefined || payment === undefined) return { received: true, duplicate: false, ignored: true };
    let refused: EventRefusal | undefined;
    let unresolved: string | undefined;
    // A dispute is taken from the event's PaymentIntent (not asked of the payment's order, as the rest
    // is): one whose PaymentIntent is not the payment's order (its metadata copied) is not recorded.
    if (notification.dispute !== undefined && notification.orderId !== payment.orderId) unresolved = foreignDispute(notification.dispute, notification.orderId, payment.orderId);
    else if (notification.dispute !== undefined) refused = await this.recordDispute(notification.paymentId, notification.dispute, context);
    else if (notification.action === 'capture' && this.options.stripe?.autoCapture === true) refused = await this.capture(notification.paymentId, context);
    else ({ unresolved } = await this.workflow.reconcileById(notification.paymentId, context));
    // Redelivering would not settle it (Stripe already says what it will say): logged for the operator, and answered.
    if (unresolved !== undefined) {
      this.logger.warn(`${event.type} ${event.id}: ${unresolved}`);
      this.options.onUnresolved?.('webhook');
    }
    await this.deliveries.record(delivery, notification.paymentId);
    return { received: true, duplicate: false, ignored: false, ...(refused === undefined ? {} : { refused }), ...(unresolved === undefined ? {} : { unresolved }) };
  }

  /**
   * A capture refused for good (expired, declined) is an answer, not a failure to retry: the event is
   * processed. So is a PaymentIntent no longer authorised when the (late) event arrives: there is
   * nothing to capture, and the payment waits for the buyer as before. So is a capture the ledger
   * refuses before the money moves (REFUSALS_BEFORE_MONEY_MOVES): answered 2xx with the refusal, as
   * Stripe would otherwise redeliver the event for days to the same answer; the payment stays
   * PENDING and authorised, for the client's capture once the account has room, or for the expiry,
   * which cancels the PaymentIntent and releases the buyer's funds. So, too, is a PaymentIntent an
   * operator captured in part: answered with PAYMENT_CAPTURED_IN_PART, nothing credited.
   */
  private async capture(paymentId: string, context: CommandContext): Promise<EventRefusal | undefined> {
    try {
      await this.workflow.capture(paymentId, context);
      return undefined;
    } catch (error) {
      if (error instanceof LedgerError && (error.code === 'PAYMENT_EXPIRED' || error.code === 'PAYMENT_DECLINED')) return undefined;
      if (error instanceof PaymentsError && error.code === 'PAYMENT_NOT_AUTHORIZED') return undefined;
      const inPart = capturedInPart(error);
      if (inPart !== undefined) {
        this.logger.warn(`auto-capture of payment ${paymentId} not made: ${inPart.message}`);
        return inPart;
      }
      const refusal = refusalBeforeMoneyMoves(error);
      if (refusal === undefined) throw error;
      // The refusal is judged on the ledger's state, not on what Stripe did: a capture that reached
      // Stripe before its process died is recorded by asking Stripe (credited, or refused with a
      // failure Stripe retries), and only a payment still uncaptured there is answered refused.
      const reconciled = await this.workflow.reconcileById(paymentId, context);
      if (reconciled.state.payments.get(paymentId)?.status !== 'PENDING') return undefined;
      this.logger.warn(`auto-capture of payment ${paymentId} refused, nothing captured (${refusal.code}: ${refusal.message}); it stays PENDING until captured or expired`);
      return refusal;
    }
  }

  /** A dispute, recorded; one of a PaymentIntent captured in part is refused, as nothing of it was credited. */
  private async recordDispute(paymentId: string, dispute: ProviderDispute, context: CommandContext): Promise<EventRefusal | undefined> {
    try {
      await this.workflow.recordDispute(paymentId, dispute, context);
      return undefined;
    } catch (error) {
      const inPart = capturedInPart(error);
      if (inPart === undefined) throw error;
      this.logger.warn(`dispute ${dispute.disputeId} (${dispute.status}) of payment ${paymentId} not recorded: ${inPart.message}`);
      return inPart;
    }
  }

}

/** Captured in part at Stripe: an operator's case, reported by the reconciliation job; redelivering would not change it. */
function capturedInPart(error: unknown): EventRefusal | undefined {
  return error instanceof PaymentsError && error.code === 'PAYMENT_CAPTURED_IN_PART' ? { code: error.code, message: error.message } : undefined;
}

function refusalBeforeMoneyMoves(error: unknown): EventRefusal | undefined {
  if (!(error instanceof LedgerError)) return undefined;
  const code = REFUSALS_BEFORE_MONEY_MOVES.find((refusal) => refusal === error.code);
  return code === undefined ? undefined : { code, message: error.message };
}

