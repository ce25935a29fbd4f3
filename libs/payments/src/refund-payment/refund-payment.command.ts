import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { CommandContext } from '@app/event-sourcing';
import { PaymentWorkflow } from '../payment-workflow.js';
import type { PaymentWriteResult } from '../payment.view.js';

/** Refunds a captured payment and takes its tokens back, once. */
export class RefundPaymentCommand extends Command<PaymentWriteResult> {
  constructor(
    readonly paymentId: string,
    readonly context: CommandContext,
  ) {
    super();
  }
}

@CommandHandler(RefundPaymentCommand)
export class RefundPaymentHandler implements ICommandHandler<RefundPaymentCommand> {
  constructor(private readonly workflow: PaymentWorkflow) {}
  execute({ paymentId, context }: RefundPaymentCommand): Promise<PaymentWriteResult> {
    return this.workflow.refund(paymentId, context);
  }
}
