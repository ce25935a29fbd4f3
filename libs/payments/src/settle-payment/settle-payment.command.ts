import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { CommandContext } from '@app/event-sourcing';
import { PaymentWorkflow } from '../payment-workflow.js';

/** A provider says something happened to a payment: ask the provider and record it (idempotent). */
export class SettlePaymentCommand extends Command<void> {
  constructor(
    readonly paymentId: string,
    readonly context: CommandContext,
  ) {
    super();
  }
}

@CommandHandler(SettlePaymentCommand)
export class SettlePaymentHandler implements ICommandHandler<SettlePaymentCommand> {
  constructor(private readonly workflow: PaymentWorkflow) {}
  execute({ paymentId, context }: SettlePaymentCommand): Promise<void> {
    return this.workflow.settleById(paymentId, context);
  }
}
