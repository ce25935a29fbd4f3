import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { CommandContext } from '@app/event-sourcing';
import { PaymentWorkflow, type InitiatedPayment } from '../payment-workflow.js';

/** Opens a PENDING payment for a token package. */
export class InitiatePaymentCommand extends Command<InitiatedPayment> {
  constructor(
    readonly userId: string,
    readonly packageId: string,
    readonly context: CommandContext,
  ) {
    super();
  }
}

@CommandHandler(InitiatePaymentCommand)
export class InitiatePaymentHandler implements ICommandHandler<InitiatePaymentCommand> {
  constructor(private readonly workflow: PaymentWorkflow) {}
  execute({ userId, packageId, context }: InitiatePaymentCommand): Promise<InitiatedPayment> {
    return this.workflow.initiate(userId, packageId, context);
  }
}
