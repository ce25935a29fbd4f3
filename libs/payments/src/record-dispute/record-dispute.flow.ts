import { randomUUID } from 'node:crypto';
import type { CommandContext, HandledCommand } from '@app/event-sourcing';
import { disputedShare, LedgerError, type RecordDispute, type TokenAccountEvent, type TokenAccountState } from '@app/ledger';
import type { PaymentFaults } from '../payment-faults.js';
import { PaymentsError } from '../payments.errors.js';
import { CHARGED_BACK_IN_PART } from '../reconciliation/reconciliation.rules.js';
import type { PaymentLedger } from '../payment-ledger.js';
import { refundHeldIn, type PaymentReconciler } from '../settle-payment/payment-reconciler.js';

/** A provider dispute as the provider reports it now (Stripe's `Dispute` object, mapped by the adapter). */
export type ProviderDispute = Pick<RecordDispute['data'], 'disputeId' | 'status' | 'amount' | 'currency' | 'reason'>;

/** Why a dispute of a PaymentIntent that is not the payment's order, though its metadata names the payment, is not recorded (for the operator). */
export function foreignDispute(dispute: ProviderDispute, disputedOrderId: string | undefined, orderId: string): string {
  return `dispute ${dispute.disputeId} (${dispute.status}) is of order ${disputedOrderId ?? 'unknown'}, whose metadata names this payment, but the payment's order is ${orderId}: not recorded`;
}

/** What recording a dispute appended. */
export type RecordedDispute = { readonly appended: number; readonly shortfall: number; readonly balance: number };

/**
 * Records a dispute the provider reported (ADR 0024): one idempotent decision by the dispute id, so
 * a repeated or late notification decides nothing new. A dispute of a payment the ledger has not
 * recorded as captured yet (its capture webhook or call not through, or lost in a crash) first
 * settles the payment with the provider, which credits it, and is then recorded. One the provider
 * captured only in part (an operator's capture) was never credited, so its dispute has no tokens to
 * take: an open or won one is refused with PAYMENT_CAPTURED_IN_PART, which no retry changes, and the
 * payment left to the operator (the reconciliation job reports it while it is PENDING); a lost one
 * gave the money back, so the payment fails (`captured_in_part_charged_back`), nothing kept.
 */
export class RecordDisputeFlow {
  constructor(
    private readonly ledger: PaymentLedger,
    private readonly reconciler: PaymentReconciler,
    private readonly faults: PaymentFaults,
    private readonly now: () => Date,
  ) {}

  async record(paymentId: string, dispute: ProviderDispute, context: CommandContext): Promise<RecordedDispute> {
    const userId = await this.ledger.ownerOf(paymentId);
    const command = async (): Promise<RecordDispute> => ({
      type: 'RecordDispute',
      data: { userId, paymentId, ...dispute, ...(await this.atProvider(userId, paymentId, dispute)), transactionId: randomUUID(), now: this.now() },
    });
    let handled;
    try {
      handled = await this.ledger.decideAndAppend(userId, await command(), context);
    } catch (error) {
      if (!(error instanceof LedgerError && error.code === 'PAYMENT_NOT_CAPTURED')) throw error;
      const reconciled = await this.reconciler.reconcileById(paymentId, context);
      try {
        // Read again from the provider: the payment is captured now.
        handled = await this.ledger.decideAndAppend(userId, await command(), context);
      } catch (uncaptured) {
        if (!(uncaptured instanceof LedgerError && uncaptured.code === 'PAYMENT_NOT_CAPTURED' && reconciled.orderStatus === 'captured_in_part')) throw uncaptured;
        return this.ofUncreditedPayment(userId, paymentId, dispute, reconciled.state, context);
      }
    }
    return this.recorded(handled);
  }

  /**
   * What a lost dispute of part of the price needs from the provider, read from it, not guessed, and
   * only then (ADR 0024):
   * - `refundedBefore`: what refunds of part of the price (an operator's) returned before, so that a
   *   dispute of the rest, which left the merchant none of the money, takes every token;
   * - `refundAtProvider`, when the dispute meets a refund pending in the ledger: the refund the
   *   provider holds of the payment, made or pending, under whose id the dispute completes the
   *   ledger's refund; none (the provider refused it, `charge_disputed`), it ends the request and
   *   takes its share. The answer names the request it was read for (`requestedAt`): should that
   *   request end before the dispute is recorded (its refund failed) and another begin, which the
   *   provider refuses once the charge is disputed, the ledger takes it as no refund held.
   */
  private async atProvider(userId: string, paymentId: string, dispute: ProviderDispute): Promise<Pick<RecordDispute['data'], 'refundAtProvider' | 'refundedBefore'>> {
    if (dispute.status !== 'lost') return {};
    const payment = (await this.ledger.load(userId)).payments.get(paymentId);
    if ((payment?.status !== 'COMPLETED' && payment?.status !== 'REFUND_PENDING') || disputedShare(payment, dispute) === payment.tokens) return {};
    const order = await this.reconciler.orderOf(payment);
    const refundId = payment.status === 'REFUND_PENDING' ? refundHeldIn(order) : null;
    return {
      ...(refundId === null ? {} : { refundAtProvider: { requestedAt: payment.updatedAt, refundId } }),
      ...(order.amountRefunded === undefined || order.amountRefunded === 0 ? {} : { refundedBefore: order.amountRefunded }),
    };
  }

  /**
   * A dispute of a payment the provider captured only in part, which credited nothing. Lost, the bank
   * took back what was captured, so nothing was kept, as when that part is refunded whole: the
   * payment fails (once: a repeat finds it FAILED). Open or won, it is refused for good.
   */
  private async ofUncreditedPayment(userId: string, paymentId: string, dispute: ProviderDispute, state: TokenAccountState, context: CommandContext): Promise<RecordedDispute> {
    if (dispute.status !== 'lost') {
      throw new PaymentsError(
        'PAYMENT_CAPTURED_IN_PART',
        `the provider took money that is not the price of payment ${paymentId} (part of it, an operator's capture; or another amount or currency), so it credited no tokens and dispute ${dispute.disputeId} (${dispute.status}) takes none; an operator decides the payment`,
        { paymentId, disputeId: dispute.disputeId, disputeStatus: dispute.status },
      );
    }
    if (state.payments.get(paymentId)?.status !== 'PENDING') return { appended: 0, shortfall: state.shortfall, balance: state.balance };
    const declined = { type: 'CapturePayment', data: { userId, paymentId, outcome: { status: 'declined', reason: CHARGED_BACK_IN_PART }, transactionId: randomUUID(), now: this.now() } } as const;
    return this.recorded(await this.ledger.decideAndAppend(userId, declined, context));
  }

  private async recorded(handled: HandledCommand<TokenAccountState, TokenAccountEvent>): Promise<RecordedDispute> {
    this.faults('dispute:after-append');
    await this.ledger.upToDate(handled);
    return { appended: handled.events.length, shortfall: handled.state.shortfall, balance: handled.state.balance };
  }
}
