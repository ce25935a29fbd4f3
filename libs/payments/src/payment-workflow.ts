import { randomUUID } from 'node:crypto';
import { formatPosition, type Position } from '@app/event-store';
import {
  assertMayOpenPayment,
  captureDecision,
  decideTokenAccount,
  fold,
  invariant,
  LedgerError,
  refundDecision,
  tokenAccountDecider,
  tokenAccountStreamId,
  type CaptureOutcome,
  type Payment,
  type TokenAccountCommand,
  type TokenAccountState,
} from '@app/ledger';
import { CommandHandling, eventMetadata, idempotentValueId, ReadModelConsistency, type CommandContext, type Written } from '@app/event-sourcing';
import { PaymentStreams } from './payment-streams.js';
import { paymentView, type PaymentView, type PaymentWriteResult } from './payment.view.js';
import { PaymentsError } from './payments.errors.js';
import type { PaymentProvider } from './provider/payment-provider.port.js';
import { timeLimited } from './provider/time-limited-provider.js';
import type { TokenPackage } from './token-packages.js';

export type PaymentWorkflowOptions = {
  readonly packages: readonly TokenPackage[];
  /** How long a payment may stay PENDING before it is expired. */
  readonly pendingTtlMs: number;
  /** How many payments a user may have open at once (PENDING_PAYMENTS_MAX). */
  readonly pendingPaymentsMax: number;
  readonly now: () => Date;
  /** Longest wait for one provider call (default PROVIDER_CALL_TIMEOUT_MS). */
  readonly providerTimeoutMs?: number;
};

export type InitiatedPayment = PaymentView & { readonly position: string | null; readonly readModelUpToDate: boolean };

/**
 * The payment use cases. Each talks to the provider only after the ledger's state allows it, and
 * records the provider's answer with one append to the user's stream (expected revision, retried on
 * conflict by CommandHandling). Every step is idempotent, so any of them can be retried after a
 * crash or a timeout and the outcome is recorded exactly once.
 */
export class PaymentWorkflow {
  private readonly provider: PaymentProvider;

  constructor(
    private readonly commands: CommandHandling,
    private readonly consistency: ReadModelConsistency,
    provider: PaymentProvider,
    private readonly streams: PaymentStreams,
    private readonly options: PaymentWorkflowOptions,
  ) {
    this.provider = timeLimited(provider, options.providerTimeoutMs);
  }

  /** Opens a PENDING payment for a package: index row, provider order, then PaymentInitiated. */
  async initiate(userId: string, packageId: string, context: CommandContext): Promise<InitiatedPayment> {
    const chosen = this.options.packages.find((candidate) => candidate.id === packageId);
    if (chosen === undefined) {
      throw new PaymentsError('PACKAGE_NOT_FOUND', `there is no token package ${packageId}`, { packageId, known: this.options.packages.map((known) => known.id).join(', ') });
    }
    // With an Idempotency-Key the payment id is derived from the request, so a retry after a crash
    // opens the same payment (same index row, same provider order), never a second one.
    const idempotency = context.idempotency;
    const paymentId = idempotency === undefined ? randomUUID() : idempotentValueId(idempotency.requestId, 'paymentId');
    const now = this.options.now();
    const pendingPaymentsMax = this.options.pendingPaymentsMax;
    // The index row and the provider's order are made under the stream's lock, once the state allows
    // a new payment (at most PENDING_PAYMENTS_MAX open), so an initiation refused, even one of many
    // racing, writes nothing and reaches no provider. The order is asked for once per request: a
    // retry after a conflicting append records the same order.
    let orderId: string | undefined;
    const handled = await this.commands.handle({
      streamId: tokenAccountStreamId(userId),
      decider: tokenAccountDecider,
      decide: async (state) => {
        const data = { userId, paymentId, packageId, tokens: chosen.tokens, amount: chosen.price, currency: chosen.currency, provider: this.provider.name, now, expiresAt: new Date(now.getTime() + this.options.pendingTtlMs), pendingPaymentsMax };
        // A payment already opened (a keyed retry) decides nothing and needs no new order.
        const opened = state.payments.get(paymentId);
        if (opened !== undefined) return decideTokenAccount({ type: 'InitiatePayment', data: { ...data, orderId: opened.orderId } }, state);
        assertMayOpenPayment(state, now, pendingPaymentsMax);
        // The index row before the order: whatever happens next, the payment id leads to the right stream.
        if (orderId === undefined) await this.streams.record(paymentId, userId);
        orderId ??= (await this.provider.createOrder({ paymentId, amount: chosen.price, currency: chosen.currency, description: `${chosen.tokens} tokens (${chosen.id})` })).orderId;
        return decideTokenAccount({ type: 'InitiatePayment', data: { ...data, orderId } }, state);
      },
      metadata: eventMetadata(context),
      idempotency,
      // Decided on the stream as it is: the cap counts payments opened through every instance.
      readFirst: true,
    });
    // A replay answers with the payment as its first attempt opened it (PENDING), whatever it became since.
    const opened = handled.replayed === true ? fold(tokenAccountDecider, tokenAccountDecider.initialState, handled.events) : handled.state;
    return { ...paymentView(paymentIn(opened, paymentId)), position: positionText(handled.position), readModelUpToDate: await this.upToDate(handled) };
  }

  /**
   * Captures at the provider and credits the package, once. The provider is called under the
   * stream's lock only when the state allows it, so racing captures in this process make one call;
   * a repeat of a captured payment returns it without calling the provider. After the expiry, the
   * provider is asked what happened instead: money it took is credited, otherwise the payment is
   * expired and the capture refused.
   */
  async capture(paymentId: string, context: CommandContext): Promise<PaymentWriteResult> {
    const userId = await this.ownerOf(paymentId);
    const now = this.options.now();
    const current = paymentIn((await this.commands.load(tokenAccountStreamId(userId), tokenAccountDecider)).state, paymentId);
    if (isUnsettled(current) && (current.status === 'FAILED' || now.getTime() >= Date.parse(current.expiresAt))) {
      const settled = await this.settle(current, context, now);
      await this.refuseUnlessCaptured(settled.state, paymentId, now, settled); // PAYMENT_EXPIRED unless the provider had captured
      return this.result(userId, settled.state, paymentId, settled);
    }
    // Asked once per request: a retry after a conflicting append records the same answer, and a
    // provider failure is the request's answer (502), which the client retries.
    let outcome: CaptureOutcome | undefined;
    let providerFailure: Error | undefined;
    const handled = await this.commands.handle({
      streamId: tokenAccountStreamId(userId),
      decider: tokenAccountDecider,
      decide: async (state) => {
        if (providerFailure !== undefined) throw providerFailure;
        if (outcome === undefined && captureDecision(state, paymentId, now) === 'done') return [];
        outcome ??= await this.provider.capture(paymentIn(state, paymentId).orderId).catch((error: unknown) => {
          providerFailure = error instanceof Error ? error : new Error(String(error));
          throw providerFailure;
        });
        return decideTokenAccount({ type: 'CapturePayment', data: { userId, paymentId, outcome, transactionId: randomUUID(), now } }, state);
      },
      metadata: eventMetadata(context),
      // Decided on the stream as it is, not a cached state another instance may have moved past.
      readFirst: true,
    });
    // Throws PAYMENT_DECLINED (or PAYMENT_EXPIRED) for a payment that ended that way, now or before.
    await this.refuseUnlessCaptured(handled.state, paymentId, now, handled);
    return this.result(userId, handled.state, paymentId, handled);
  }

  /**
   * Refunds at the provider, then records it and takes the tokens back, once. The balance check and
   * the provider call happen under the stream's lock, so spending in this process cannot slip in
   * between; a refund that would drive the balance below zero is refused before the provider.
   */
  async refund(paymentId: string, context: CommandContext): Promise<PaymentWriteResult> {
    const userId = await this.ownerOf(paymentId);
    let providerRefundId: string | undefined;
    const handled = await this.commands.handle({
      streamId: tokenAccountStreamId(userId),
      decider: tokenAccountDecider,
      decide: async (state) => {
        // Once the provider has refunded, the refund is recorded whatever the balance has become.
        if (providerRefundId === undefined && (await this.refundDecisionOrRefunded(state, paymentId)) === 'done') return [];
        providerRefundId ??= (await this.provider.refund(paymentIn(state, paymentId).orderId)).providerRefundId;
        return decideTokenAccount({ type: 'RefundPayment', data: { userId, paymentId, providerRefundId, transactionId: randomUUID(), now: this.options.now() } }, state);
      },
      metadata: eventMetadata(context),
      // The balance check must see every spend, including those made through other instances: a
      // refund decided on a stale cached balance would return money for tokens already spent.
      readFirst: true,
    });
    return this.result(userId, handled.state, paymentId, handled);
  }

  /**
   * The ledger's refund decision, except that a refund the provider has already made is always
   * recorded: an earlier attempt refunded, then died or lost its append, and the user spent tokens
   * since. Refusing it now would leave money returned and tokens kept, for good.
   */
  private async refundDecisionOrRefunded(state: TokenAccountState, paymentId: string): Promise<'refund' | 'done'> {
    try {
      return refundDecision(state, paymentId);
    } catch (error) {
      if (!(error instanceof LedgerError && error.code === 'REFUND_EXCEEDS_BALANCE')) throw error;
      const order = await this.provider.getOrder(paymentIn(state, paymentId).orderId);
      if (order.status !== 'refunded') throw error;
      return 'refund';
    }
  }

  /**
   * Ends a PENDING payment by what the provider says about its order: captured -> credited,
   * declined -> failed, anything else -> expired (only once its expiry has passed). The reconciliation
   * path of the expiry job, the webhook and a late capture.
   */
  async settle(payment: Payment, context: CommandContext, now = this.options.now()): Promise<{ state: TokenAccountState; position: Position | undefined }> {
    const order = await this.provider.getOrder(payment.orderId);
    if (order.status === 'captured' && order.providerTransactionId !== null) {
      return this.record(payment, { status: 'captured', providerTransactionId: order.providerTransactionId }, context, now);
    }
    if (order.status === 'refunded' && order.providerTransactionId !== null) {
      // Captured, then refunded at the provider (by an operator) before the ledger heard of either:
      // both are recorded, so the tokens are credited and taken back, as the money was.
      await this.record(payment, { status: 'captured', providerTransactionId: order.providerTransactionId }, context, now);
      const { providerRefundId } = await this.provider.refund(payment.orderId);
      const refund: TokenAccountCommand = { type: 'RefundPayment', data: { userId: payment.userId, paymentId: payment.paymentId, providerRefundId, transactionId: randomUUID(), now } };
      return this.decideAndAppend(payment.userId, refund, context);
    }
    if (order.status === 'declined') return this.record(payment, { status: 'declined', reason: order.declineReason ?? 'declined' }, context, now);
    const command: TokenAccountCommand = { type: 'ExpirePayment', data: { userId: payment.userId, paymentId: payment.paymentId, now } };
    return this.decideAndAppend(payment.userId, command, context);
  }

  /** Settles the payment with this id if it is PENDING or expired (a provider notification); otherwise nothing. */
  async settleById(paymentId: string, context: CommandContext): Promise<void> {
    const userId = await this.ownerOf(paymentId);
    const loaded = await this.commands.load(tokenAccountStreamId(userId), tokenAccountDecider);
    const payment = paymentIn(loaded.state, paymentId);
    if (isUnsettled(payment)) await this.upToDate(await this.settle(payment, context));
  }

  /**
   * Throws what `captureDecision` refuses. The refusal may follow an append (PaymentFailed,
   * PaymentExpired): like every write, it answers once the read models include that append, so a
   * read right after the 402 or 409 shows the FAILED payment.
   */
  private async refuseUnlessCaptured(state: TokenAccountState, paymentId: string, now: Date, written: Written): Promise<void> {
    try {
      captureDecision(state, paymentId, now);
    } catch (error) {
      await this.upToDate(written);
      throw error;
    }
  }

  private record(payment: Payment, outcome: CaptureOutcome, context: CommandContext, now = this.options.now()) {
    const command: TokenAccountCommand = {
      type: 'CapturePayment',
      data: { userId: payment.userId, paymentId: payment.paymentId, outcome, transactionId: randomUUID(), now },
    };
    return this.decideAndAppend(payment.userId, command, context);
  }

  private decideAndAppend(userId: string, command: TokenAccountCommand, context: CommandContext) {
    return this.commands.handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccount(command, state), metadata: eventMetadata(context) });
  }

  private async ownerOf(paymentId: string): Promise<string> {
    const userId = await this.streams.userOf(paymentId);
    if (userId === undefined) throw new LedgerError('PAYMENT_NOT_FOUND', `payment ${paymentId} does not exist`, { paymentId });
    return userId;
  }

  private async result(userId: string, state: TokenAccountState, paymentId: string, written: Written): Promise<PaymentWriteResult> {
    invariant(paymentIn(state, paymentId).userId === userId, `payment ${paymentId} is in the stream of another user`);
    return { payment: paymentView(paymentIn(state, paymentId)), balance: state.balance, position: positionText(written.position), readModelUpToDate: await this.upToDate(written) };
  }

  /** Whether the read models show the write: at once when they committed with it, else once the runner has applied it. */
  private upToDate(written: Written): Promise<boolean> {
    return this.consistency.waitFor(written.position, { committedWithAppend: written.readModelsCommitted === true });
  }
}

/** PENDING, or expired: the provider may still have taken the money (a capture racing the expiry). */
function isUnsettled(payment: Payment): boolean {
  return payment.status === 'PENDING' || (payment.status === 'FAILED' && payment.failure === 'expired');
}

/** The payment in a state read from its stream; absent means the append never happened. */
function paymentIn(state: TokenAccountState, paymentId: string): Payment {
  const payment = state.payments.get(paymentId);
  if (payment === undefined) throw new LedgerError('PAYMENT_NOT_FOUND', `payment ${paymentId} does not exist`, { paymentId });
  return payment;
}

function positionText(position: Position | undefined): string | null {
  return position === undefined ? null : formatPosition(position);
}
