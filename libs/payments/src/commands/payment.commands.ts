import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import type { CommandContext } from '@app/event-sourcing';
import { PaymentWorkflow, type InitiatedPayment } from '../payment-workflow.js';
import type { PaymentWriteResult } from '../payment.view.js';

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

/** Captures a payment at the provider and credits its tokens, once. */
export class CapturePaymentCommand extends Command<PaymentWriteResult> {
  constructor(
    readonly paymentId: string,
    readonly context: CommandContext,
  ) {
    super();
  }
}

/** Refunds a captured payment and takes its tokens back, once. */
export class RefundPaymentCommand extends Command<PaymentWriteResult> {
  constructor(
    readonly paymentId: string,
    readonly context: CommandContext,
  ) {
    super();
  }
}

/** A provider says something happened to a payment: ask the provider and record it (idempotent). */
export class SettlePaymentCommand extends Command<void> {
  constructor(
    readonly paymentId: string,
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

@CommandHandler(CapturePaymentCommand)
export class CapturePaymentHandler implements ICommandHandler<CapturePaymentCommand> {
  constructor(private readonly workflow: PaymentWorkflow) {}
  execute({ paymentId, context }: CapturePaymentCommand): Promise<PaymentWriteResult> {
    return this.workflow.capture(paymentId, context);
  }
}

@CommandHandler(RefundPaymentCommand)
export class RefundPaymentHandler implements ICommandHandler<RefundPaymentCommand> {
  constructor(private readonly workflow: PaymentWorkflow) {}
  execute({ paymentId, context }: RefundPaymentCommand): Promise<PaymentWriteResult> {
    return this.workflow.refund(paymentId, context);
  }
}

@CommandHandler(SettlePaymentCommand)
export class SettlePaymentHandler implements ICommandHandler<SettlePaymentCommand> {
  constructor(private readonly workflow: PaymentWorkflow) {}
  execute({ paymentId, context }: SettlePaymentCommand): Promise<void> {
    return this.workflow.settleById(paymentId, context);
  }
}
