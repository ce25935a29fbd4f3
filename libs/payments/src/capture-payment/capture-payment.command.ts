import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { CommandContext } from '@app/event-sourcing';
import { PaymentWorkflow } from '../payment-workflow.js';
import type { PaymentWriteResult } from '../payment.view.js';

/** Captures a payment at the provider and credits its tokens, once. */
export class CapturePaymentCommand extends Command<PaymentWriteResult> {
  constructor(
    readonly paymentId: string,
    readonly context: CommandContext,
  ) {
    super();
  }
}

@CommandHandler(CapturePaymentCommand)
export class CapturePaymentHandler implements ICommandHandler<CapturePaymentCommand> {
  constructor(private readonly workflow: PaymentWorkflow) {}
  execute({ paymentId, context }: CapturePaymentCommand): Promise<PaymentWriteResult> {
    return this.workflow.capture(paymentId, context);
  }
}
