import { randomUUID } from 'node:crypto';
import type { CommandContext } from '@app/event-sourcing';
import { LedgerError, type RecordDispute } from '@app/ledger';
import type { PaymentFaults } from '../payment-faults.js';
import type { PaymentLedger } from '../payment-ledger.js';
import type { PaymentReconciler } from '../settle-payment/payment-reconciler.js';

/** A provider dispute as the provider reports it now (Stripe's `Dispute` object, mapped by the adapter). */
export type ProviderDispute = Pick<RecordDispute['data'], 'disputeId' | 'status' | 'amount' | 'currency' | 'reason'>;

/** What recording a dispute appended. */
export type RecordedDispute = { readonly appended: number; readonly shortfall: number; readonly balance: number };

/**
 * Records a dispute the provider reported (ADR 0024): one idempotent decision by the dispute id, so
 * a repeated or late notification decides nothing new. A dispute of a payment the ledger has not
 * recorded as captured yet (its capture webhook or call not through, or lost in a crash) first
 * settles the payment with the provider, which credits it, and is then recorded.
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
    const command = (): RecordDispute => ({ type: 'RecordDispute', data: { userId, paymentId, ...dispute, transactionId: randomUUID(), now: this.now() } });
    let handled;
    try {
      handled = await this.ledger.decideAndAppend(userId, command(), context);
    } catch (error) {
      if (!(error instanceof LedgerError && error.code === 'PAYMENT_NOT_CAPTURED')) throw error;
      await this.reconciler.reconcileById(paymentId, context);
      handled = await this.ledger.decideAndAppend(userId, command(), context);
    }
    this.faults('dispute:after-append');
    await this.ledger.upToDate(handled);
    return { appended: handled.events.length, shortfall: handled.state.shortfall, balance: handled.state.balance };
  }
}
