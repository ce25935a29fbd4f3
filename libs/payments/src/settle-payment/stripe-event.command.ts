import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { CommandContext } from '@app/event-sourcing';
import { LedgerError } from '@app/ledger';
import { PaymentWorkflow } from '../payment-workflow.js';
import { PaymentsError } from '../payments.errors.js';
import { PAYMENTS_OPTIONS, STRIPE_WEBHOOKS, type PaymentsOptions } from '../payments.tokens.js';
import type { StripeWebhooks } from '../provider/stripe/stripe-webhooks.js';
import { WebhookDeliveries } from './webhook-deliveries.js';

/** `ignored`: signed by Stripe but about nothing of ours; `duplicate`: this event id was processed before. */
export type StripeEventOutcome = { readonly received: true; readonly duplicate: boolean; readonly ignored: boolean };

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
 * recorded after its effect is committed, and the answer (2xx) follows that: a failure is a 5xx,
 * which Stripe retries.
 */
@CommandHandler(HandleStripeEventCommand)
export class HandleStripeEventHandler implements ICommandHandler<HandleStripeEventCommand> {
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
    if (notification === undefined || !(await this.isOurs(notification.paymentId))) return { received: true, duplicate: false, ignored: true };
    if (notification.dispute !== undefined) await this.workflow.recordDispute(notification.paymentId, notification.dispute, context);
    else if (notification.action === 'capture' && this.options.stripe?.autoCapture === true) await this.capture(notification.paymentId, context);
    else await this.workflow.reconcileById(notification.paymentId, context);
    await this.deliveries.record(delivery, notification.paymentId);
    return { received: true, duplicate: false, ignored: false };
  }

  /**
   * A capture refused for good (expired, declined) is an answer, not a failure to retry: the event is
   * processed. So is a PaymentIntent no longer authorised when the (late) event arrives: there is
   * nothing to capture, and the payment waits for the buyer as before.
   */
  private async capture(paymentId: string, context: CommandContext): Promise<void> {
    try {
      await this.workflow.capture(paymentId, context);
    } catch (error) {
      if (error instanceof LedgerError && (error.code === 'PAYMENT_EXPIRED' || error.code === 'PAYMENT_DECLINED')) return;
      if (error instanceof PaymentsError && error.code === 'PAYMENT_NOT_AUTHORIZED') return;
      throw error;
    }
  }

  private async isOurs(paymentId: string): Promise<boolean> {
    return (await this.workflow.findPayment(paymentId)) !== undefined;
  }
}
