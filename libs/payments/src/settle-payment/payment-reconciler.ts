import { randomUUID } from 'node:crypto';
import type { CommandContext, HandledCommand, Written } from '@app/event-sourcing';
import { type Payment, type TokenAccountCommand, type TokenAccountEvent, type TokenAccountState } from '@app/ledger';
import type { PaymentFaults } from '../payment-faults.js';
import type { PaymentLedger } from '../payment-ledger.js';
import { PaymentsError } from '../payments.errors.js';
import { failedRefundOf, failRefundOf } from '../refund-payment/failed-refund.js';
import { providerIdempotencyKey, type PaymentProvider, type ProviderOrder, type ProviderOrderStatus, type ProviderRefund } from '../provider/payment-provider.port.js';
import { reconciliationOf, type ReconciliationStep } from '../reconciliation/reconciliation.rules.js';

/** What reconciling appended, the account after it, what is left unresolved, and the order as the provider last answered it. */
export type Reconciled = Written & { readonly state: TokenAccountState; readonly appended: number; readonly unresolved?: string; readonly orderStatus?: ProviderOrderStatus };

/**
 * Brings one payment's ledger state to what the provider says about its order
 * (`reconciliationOf`): the expiry job, the reconciliation job, webhooks and a capture after the
 * expiry all settle a payment through here. Every step is an idempotent decision appended at the
 * expected revision, and every provider call it makes carries the payment's idempotency key, so a
 * crash at any point is finished by the next run.
 */
export class PaymentReconciler {
  constructor(
    private readonly ledger: PaymentLedger,
    private readonly provider: PaymentProvider,
    private readonly faults: PaymentFaults,
    private readonly now: () => Date,
  ) {}

  async reconcile(payment: Payment, context: CommandContext, now = this.now()): Promise<Reconciled> {
    let order = await this.provider.getOrder(payment);
    this.faults('reconcile:after-provider-order');
    let plan = reconciliationOf(payment, order, now, { lostDispute: await this.lostDispute(payment, order.status) });
    if ('steps' in plan && plan.steps.some((step) => step.kind === 'expire' || step.kind === 'cancel-at-provider')) {
      // Before the ledger gives up on the payment (or once it has, FAILED), the provider must give up
      // on it too (a buyer may still approve it): cancelled there, or, if it was captured meanwhile,
      // credited instead.
      order = await this.provider.cancel(payment, providerIdempotencyKey('cancel', payment.paymentId));
      // Still open there: the provider could not cancel it (Stripe: `processing`), so the buyer's money
      // may yet be taken or authorised. Not expired; the next run asks again.
      plan = order.status === 'created' ? { steps: [] } : reconciliationOf(payment, order, now);
    }
    let reconciled: Reconciled | undefined;
    if ('steps' in plan) {
      for (const step of plan.steps) {
        const handled = await this.apply(payment, step, context, now);
        if (handled === undefined) break;
        if ('unresolved' in handled) {
          plan = handled;
          break;
        }
        reconciled = { ...handled, appended: (reconciled?.appended ?? 0) + handled.events.length };
      }
    }
    reconciled ??= { state: await this.ledger.load(payment.userId), position: undefined, appended: 0 };
    return { ...reconciled, orderStatus: order.status, ...('unresolved' in plan ? { unresolved: plan.unresolved } : {}) };
  }

  /**
   * Whether the refund the ledger recorded for a payment refunded in the ledger and captured at the
   * provider is a lost dispute's completion (its refund id is the dispute's: the charge was charged
   * back, never refunded). A refund made at the provider, before or after a lost dispute, is not: if
   * the provider no longer reads it refunded, it was returned. The stream is read only then.
   */
  private async lostDispute(payment: Payment, orderStatus: ProviderOrderStatus): Promise<boolean> {
    if (payment.status !== 'REFUNDED' || (orderStatus !== 'captured' && orderStatus !== 'captured_in_part')) return false;
    const refundId = payment.providerRefundId;
    return refundId !== null && (await this.ledger.load(payment.userId)).disputes.get(refundId)?.status === 'lost';
  }

  /** The payment's order as the provider has it now. */
  orderOf(payment: Payment): Promise<ProviderOrder> {
    return this.provider.getOrder(payment);
  }

  /** Reconciles the payment with this id, whatever its status (a provider notification). */
  async reconcileById(paymentId: string, context: CommandContext): Promise<Reconciled> {
    const userId = await this.ledger.ownerOf(paymentId);
    const payment = (await this.ledger.load(userId)).payments.get(paymentId);
    if (payment === undefined) return { state: await this.ledger.load(userId), position: undefined, appended: 0 };
    const reconciled = await this.reconcile(payment, context);
    await this.ledger.upToDate(reconciled);
    return reconciled;
  }

  /**
   * The step's decision, appended; undefined when there is nothing to record yet (a refund the
   * provider has not finished); unresolved when the provider refuses it while its charge is disputed.
   * A refund that failed at the provider ends its request (`FailRefund`).
   */
  private async apply(
    payment: Payment,
    step: ReconciliationStep,
    context: CommandContext,
    now: Date,
  ): Promise<HandledCommand<TokenAccountState, TokenAccountEvent> | { readonly unresolved: string } | undefined> {
    const ids = { userId: payment.userId, paymentId: payment.paymentId };
    let command: TokenAccountCommand;
    switch (step.kind) {
      case 'record-capture':
        command = { type: 'CapturePayment', data: { ...ids, outcome: step.outcome, transactionId: randomUUID(), now, lot: this.ledger.lotTermsOf(payment.packageId) } };
        break;
      case 'expire':
        command = { type: 'ExpirePayment', data: { ...ids, now } };
        break;
      case 'cancel-at-provider':
        // Made by `reconcile` before the steps run, which plans again on the provider's answer.
        throw new Error(`payment ${payment.paymentId}: a cancel at the provider reached the ledger's steps`);
      case 'record-refund':
        command = { type: 'RefundPayment', data: { ...ids, providerRefundId: step.providerRefundId, transactionId: randomUUID(), now } };
        break;
      case 'refund-at-provider': {
        // A refund we asked for whose provider call never happened or whose answer was lost: the same key, so the provider refunds once.
        // Only while a request still reserves the tokens: one ended since this payment was read (its
        // failure recorded by a client's retry, on another process) reserves nothing, and a refund
        // made now would return money for tokens the account may spend. The next run plans again.
        if ((await this.ledger.load(payment.userId)).payments.get(payment.paymentId)?.status !== 'REFUND_PENDING') return undefined;
        let refund: ProviderRefund;
        try {
          refund = await this.provider.refund(payment, providerIdempotencyKey('refund', payment.paymentId));
        } catch (error) {
          // Failed at the provider: the request ends (the tokens are the account's again).
          const failed = failedRefundOf(error);
          if (failed !== undefined) {
            this.faults('reconcile:after-provider-failure');
            const ended = await this.ledger.decideAndAppend(payment.userId, failRefundOf(payment, failed, now), context);
            // Not ended while a dispute of the payment is open (its outcome ends the request), nor a request asked for since.
            if (ended.state.payments.get(payment.paymentId)?.status !== 'REFUND_PENDING') return ended;
            return { unresolved: `payment ${payment.paymentId}'s refund failed (${failed.reason}) but it stays REFUND_PENDING: a dispute of it is open, or a later request is pending` };
          }
          // Refused while the charge is disputed: the dispute's outcome ends the request. Retrying would not
          // help meanwhile (nor should Stripe redeliver its notification for days).
          if (error instanceof PaymentsError && error.code === 'REFUND_FAILED') return { unresolved: `payment ${payment.paymentId} is REFUND_PENDING but ${error.message}` };
          throw error;
        }
        const { providerRefundId, status } = refund;
        if (status === 'pending') return undefined;
        this.faults('reconcile:after-provider-refund');
        command = { type: 'RefundPayment', data: { ...ids, providerRefundId, transactionId: randomUUID(), now } };
        break;
      }
      default: {
        const unknown: never = step;
        throw new Error(`unknown reconciliation step ${JSON.stringify(unknown)}`);
      }
    }
    return this.ledger.decideAndAppend(payment.userId, command, context);
  }
}

/**
 * Of an order as the provider answered it, the refund it holds of the payment, made or still
 * pending (Stripe: one that leaves the charge refunded whole), or null. An operator's refund of
 * part of the order is not one (ADR 0021: an operator's case).
 */
export function refundHeldIn(order: ProviderOrder): string | null {
  return order.providerRefundId ?? order.pendingRefundId ?? null;
}
