import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { captureDecision, decideTokenAccount, tokenAccountDecider, tokenAccountStreamId, type CaptureOutcome, type Payment, type TokenAccountState } from '@app/ledger';
import { eventMetadata, type CommandContext, type Written } from '@app/event-sourcing';
import type { PaymentFaults } from '../payment-faults.js';
import { paymentIn, type PaymentLedger } from '../payment-ledger.js';
import type { PaymentWriteResult } from '../payment.view.js';
import { providerIdempotencyKey, type PaymentProvider } from '../provider/payment-provider.port.js';
import type { PaymentReconciler, Reconciled } from '../settle-payment/payment-reconciler.js';

/**
 * Captures at the provider and credits the package, once. The provider is called under the
 * stream's lock only when the state allows it, so racing captures in this process make one call;
 * a repeat of a captured payment returns it without calling the provider. After the expiry, the
 * provider is asked what happened instead: money it took is credited, otherwise the payment is
 * expired and the capture refused. A crash between the provider's capture and the append leaves a
 * PENDING payment captured at the provider: the client's retry, the webhook, the expiry job or the
 * reconciliation job records it once. A payment that FAILED is settled by what the provider says
 * before it is refused: its order, still open there (Stripe lets the buyer try another card on the
 * same PaymentIntent after a decline), is cancelled, so no later authorisation holds the buyer's
 * money for a payment that will never be captured; one captured there meanwhile is credited.
 */
export class CapturePaymentFlow {
  private readonly logger = new Logger('Payments');

  constructor(
    private readonly ledger: PaymentLedger,
    private readonly provider: PaymentProvider,
    private readonly reconciler: PaymentReconciler,
    private readonly faults: PaymentFaults,
    private readonly now: () => Date,
  ) {}

  async capture(paymentId: string, context: CommandContext): Promise<PaymentWriteResult> {
    const userId = await this.ledger.ownerOf(paymentId);
    const now = this.now();
    const current = paymentIn(await this.ledger.load(userId), paymentId);
    // Settled by what the provider says first: a payment declined before (its 402 stands unless the
    // provider captured since; asking also cancels an order still open there, and a provider that
    // does not answer leaves the answer to the ledger below), or one expired (PAYMENT_EXPIRED unless
    // the provider had captured).
    const settledFirst =
      current.status === 'FAILED' && current.failure === 'declined'
        ? await this.releaseDeclined(current, context, now)
        : current.status === 'FAILED' || (current.status === 'PENDING' && now.getTime() >= Date.parse(current.expiresAt))
          ? await this.reconciler.reconcile(current, context, now)
          : undefined;
    if (settledFirst !== undefined) return this.answer(userId, paymentId, now, settledFirst);
    // Asked once per request: a retry after a conflicting append records the same answer, and a
    // provider failure is the request's answer (502), which the client retries.
    let outcome: CaptureOutcome | undefined;
    let providerFailure: Error | undefined;
    const handled = await this.ledger.commands.handle({
      streamId: tokenAccountStreamId(userId),
      decider: tokenAccountDecider,
      decide: async (state) => {
        if (providerFailure !== undefined) throw providerFailure;
        if (outcome === undefined && captureDecision(state, paymentId, now) === 'done') return [];
        outcome ??= await this.provider.capture(paymentIn(state, paymentId), providerIdempotencyKey('capture', paymentId)).catch((error: unknown) => {
          providerFailure = error instanceof Error ? error : new Error(String(error));
          throw providerFailure;
        });
        this.faults('capture:after-provider-capture');
        const lot = this.ledger.lotTermsOf(paymentIn(state, paymentId).packageId);
        return decideTokenAccount({ type: 'CapturePayment', data: { userId, paymentId, outcome, transactionId: randomUUID(), now, lot } }, state);
      },
      metadata: eventMetadata(context),
      // Decided on the stream as it is, not a cached state another instance may have moved past.
      readFirst: true,
    });
    const after = paymentIn(handled.state, paymentId);
    // The decline is recorded; the order is released at the provider now. The answer is what that
    // leaves: the decline, or the capture another request made meanwhile of a card the buyer
    // authorised since (credited by the reconciliation, never refused as declined).
    const released = outcome?.status === 'declined' && after.status === 'FAILED' ? await this.releaseDeclined(after, context, now) : undefined;
    return this.answer(userId, paymentId, now, released ?? handled);
  }

  /** The payment as `written` leaves it; throws PAYMENT_DECLINED (or PAYMENT_EXPIRED) for a payment that ended that way, now or before. */
  private async answer(userId: string, paymentId: string, now: Date, written: Written & { readonly state: TokenAccountState }): Promise<PaymentWriteResult> {
    await this.refuseUnlessCaptured(written.state, paymentId, now, written);
    return this.ledger.result(userId, written.state, paymentId, written);
  }

  /**
   * Reconciles a declined payment: its order, still open at the provider (Stripe lets the buyer try
   * another card on the same PaymentIntent), is cancelled; captured there since, it is credited.
   * Undefined when the provider does not answer: logged, and left to the reconciliation job, which
   * compares FAILED payments too.
   */
  private async releaseDeclined(payment: Payment, context: CommandContext, now: Date): Promise<Reconciled | undefined> {
    try {
      return await this.reconciler.reconcile(payment, context, now);
    } catch (error) {
      this.logger.warn(`payment ${payment.paymentId} declined; its order is not cancelled at the provider yet (${error instanceof Error ? error.message : String(error)}): the reconciliation job cancels it`);
      return undefined;
    }
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
      await this.ledger.upToDate(written);
      throw error;
    }
  }
}
