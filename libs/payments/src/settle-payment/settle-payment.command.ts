import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { CommandContext } from '@app/event-sourcing';
import { PaymentWorkflow } from '../payment-workflow.js';
import { WebhookDeliveries, type WebhookDelivery } from './webhook-deliveries.js';

/** What a provider notification led to: `duplicate` when that delivery was processed before (nothing done now). */
export type NotificationOutcome = { readonly duplicate: boolean };

/**
 * A provider says something happened to a payment: unless this delivery was processed already, ask
 * the provider and reconcile the payment (idempotent), then remember the delivery.
 */
export class SettlePaymentCommand extends Command<NotificationOutcome> {
  constructor(
    readonly paymentId: string,
    readonly delivery: WebhookDelivery,
    readonly context: CommandContext,
  ) {
    super();
  }
}

@CommandHandler(SettlePaymentCommand)
export class SettlePaymentHandler implements ICommandHandler<SettlePaymentCommand> {
  constructor(
    private readonly workflow: PaymentWorkflow,
    private readonly deliveries: WebhookDeliveries,
  ) {}

  async execute({ paymentId, delivery, context }: SettlePaymentCommand): Promise<NotificationOutcome> {
    if (await this.deliveries.processed(delivery)) return { duplicate: true };
    await this.workflow.reconcileById(paymentId, context);
    await this.deliveries.record(delivery, paymentId);
    return { duplicate: false };
  }
}
