import type { DisputeStatus, Payment, TokenAccountState } from '@app/ledger';
import { type CommandContext, CommandHandling, PaymentStreams, ReadModelConsistency } from '@app/event-sourcing';
import { CapturePaymentFlow } from './capture-payment/capture-payment.flow.js';
import { InitiatePaymentFlow, type InitiatedPayment } from './initiate-payment/initiate-payment.flow.js';
import { NO_FAULTS, type PaymentFaults } from './payment-faults.js';
import { PaymentLedger } from './payment-ledger.js';
import type { PaymentWriteResult } from './payment.view.js';
import type { PaymentProvider } from './provider/payment-provider.port.js';
import { timeLimited } from './provider/time-limited-provider.js';
import { RefundPaymentFlow } from './refund-payment/refund-payment.flow.js';
import { RecordDisputeFlow, type ProviderDispute, type RecordedDispute } from './record-dispute/record-dispute.flow.js';
import { PaymentReconciler, type Reconciled } from './settle-payment/payment-reconciler.js';
import { packageLotTerms, type TokenPackage } from './token-packages.js';

export type { InitiatedPayment } from './initiate-payment/initiate-payment.flow.js';
export type { Reconciled } from './settle-payment/payment-reconciler.js';
export type { ProviderDispute, RecordedDispute } from './record-dispute/record-dispute.flow.js';

export type PaymentWorkflowOptions = {
  readonly packages: readonly TokenPackage[];
  /** How long a payment may stay PENDING before it is expired. */
  readonly pendingTtlMs: number;
  /** How many payments a user may have open at once (PENDING_PAYMENTS_MAX). */
  readonly pendingPaymentsMax: number;
  readonly now: () => Date;
  /** Longest wait for one provider call (default PROVIDER_CALL_TIMEOUT_MS). */
  readonly providerTimeoutMs?: number;
  /** Called at each named point between a provider call and the append after it (tests only). */
  readonly faults?: PaymentFaults;
};

/**
 * The payment use cases over one provider and one ledger, each in its folder: initiate, capture,
 * refund, and the reconciler that settles a payment by what the provider says. Each talks to the
 * provider only after the ledger's state allows it and records the answer with one append to the
 * user's stream at the expected revision; every step is idempotent, so any of them can be retried
 * after a crash or a timeout and the outcome is recorded exactly once (ADR 0009, ADR 0016).
 */
export class PaymentWorkflow {
  private readonly initiating: InitiatePaymentFlow;
  private readonly capturing: CapturePaymentFlow;
  private readonly refunding: RefundPaymentFlow;
  private readonly reconciler: PaymentReconciler;
  private readonly disputes: RecordDisputeFlow;
  private readonly ledger: PaymentLedger;

  constructor(
    commands: CommandHandling,
    consistency: ReadModelConsistency,
    provider: PaymentProvider,
    private readonly streams: PaymentStreams,
    options: PaymentWorkflowOptions,
  ) {
    const limited = timeLimited(provider, options.providerTimeoutMs);
    const ledger = new PaymentLedger(commands, consistency, streams, (packageId) => packageLotTerms(options.packages, packageId));
    this.ledger = ledger;
    const faults = options.faults ?? NO_FAULTS;
    this.reconciler = new PaymentReconciler(ledger, limited, faults, options.now);
    this.initiating = new InitiatePaymentFlow(ledger, limited, streams, faults, options);
    this.capturing = new CapturePaymentFlow(ledger, limited, this.reconciler, faults, options.now);
    this.refunding = new RefundPaymentFlow(ledger, limited, faults, options.now);
    this.disputes = new RecordDisputeFlow(ledger, this.reconciler, faults, options.now);
  }

  /** Opens a PENDING payment for a package. */
  initiate(userId: string, packageId: string, context: CommandContext): Promise<InitiatedPayment> {
    return this.initiating.initiate(userId, packageId, context);
  }

  /** Captures at the provider and credits the package, once. */
  capture(paymentId: string, context: CommandContext): Promise<PaymentWriteResult> {
    return this.capturing.capture(paymentId, context);
  }

  /** Records the refund's intent, refunds at the provider, then takes the tokens back, once. */
  refund(paymentId: string, context: CommandContext): Promise<PaymentWriteResult> {
    return this.refunding.refund(paymentId, context);
  }

  /** Records a dispute the provider reported; a lost one takes the purchase's tokens back (ADR 0024). */
  recordDispute(paymentId: string, dispute: ProviderDispute, context: CommandContext): Promise<RecordedDispute> {
    return this.disputes.record(paymentId, dispute, context);
  }

  /** Brings a payment to what the provider says about it (the jobs' path). */
  reconcile(payment: Payment, context: CommandContext, now?: Date): Promise<Reconciled> {
    return this.reconciler.reconcile(payment, context, now);
  }

  /** A user's account as its stream says now (the jobs decide on it, not on the read model, which may lag). */
  stateOf(userId: string): Promise<TokenAccountState> {
    return this.ledger.load(userId);
  }

  /** The payment with this id as its stream says now, or undefined when there is none. */
  async findPayment(paymentId: string): Promise<Payment | undefined> {
    const userId = await this.streams.userOf(paymentId);
    return userId === undefined ? undefined : (await this.ledger.load(userId)).payments.get(paymentId);
  }

  /**
   * The order of the payment with this id and the status the account records for this dispute (null
   * when it records none), as its stream says now; undefined when there is no such payment.
   */
  async disputeRecordOf(paymentId: string, disputeId: string): Promise<{ readonly orderId: string; readonly recorded: DisputeStatus | null } | undefined> {
    const userId = await this.streams.userOf(paymentId);
    if (userId === undefined) return undefined;
    const state = await this.ledger.load(userId);
    const payment = state.payments.get(paymentId);
    if (payment === undefined) return undefined;
    const dispute = state.disputes.get(disputeId);
    return { orderId: payment.orderId, recorded: dispute?.paymentId === paymentId ? dispute.status : null };
  }

  /** Reconciles the payment with this id, whatever its status (a provider notification). */
  reconcileById(paymentId: string, context: CommandContext): Promise<Reconciled> {
    return this.reconciler.reconcileById(paymentId, context);
  }
}
