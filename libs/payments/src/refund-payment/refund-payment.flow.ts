import { randomUUID } from 'node:crypto';
import {
  blockingDisputeOf,
  decideTokenAccount,
  decideTokenAccountWithState,
  LedgerError,
  tokenAccountDecider,
  tokenAccountStreamId,
  type Payment,
  type TokenAccountEvent,
  type TokenAccountState,
} from '@app/ledger';
import { eventMetadata, type CommandContext } from '@app/event-sourcing';
import type { PaymentFaults } from '../payment-faults.js';
import { PaymentsError } from '../payments.errors.js';
import { failedRefundOf, failRefundOf } from './failed-refund.js';
import { paymentIn, type PaymentLedger } from '../payment-ledger.js';
import type { PaymentWriteResult } from '../payment.view.js';
import { providerIdempotencyKey, type PaymentProvider, type ProviderRefund } from '../provider/payment-provider.port.js';

/**
 * Refunds a captured payment and takes its tokens back, once, in three steps that each survive a
 * crash after them:
 * 1. `PaymentRefundRequested` is appended (REFUND_PENDING, tokens reserved) when the ledger allows the
 *    refund: decided with `readFirst`, so a spend through another process is seen;
 * 2. the provider refunds, with the key `refund-<paymentId>`, so any retry refunds once (a refund
 *    it has not finished leaves the payment REFUND_PENDING: recorded once it succeeded);
 * 3. `PaymentRefunded` and `TokensRefunded` are appended; or, when the provider's refund failed,
 *    `PaymentRefundFailed` (COMPLETED again, the tokens released) and the client gets REFUND_FAILED.
 * A crash after 1 or 2 leaves a REFUND_PENDING payment; the client's retry, or the reconciliation
 * job, carries it on from step 2. The account's lock is not held across the provider's refund: the
 * reservation, not the lock, keeps the tokens from being spent meanwhile. Once a refund failed, asking
 * again reads what the provider has first, before step 1 and outside the lock (`answerAfterFailure`),
 * and asks it to refund only after step 1.
 */
export class RefundPaymentFlow {
  constructor(
    private readonly ledger: PaymentLedger,
    private readonly provider: PaymentProvider,
    private readonly faults: PaymentFaults,
    private readonly now: () => Date,
  ) {}

  async refund(paymentId: string, context: CommandContext): Promise<PaymentWriteResult> {
    const userId = await this.ledger.ownerOf(paymentId);
    const answer = await this.answerAfterFailure(userId, paymentId);
    const requested = await this.ledger.commands.handle({
      streamId: tokenAccountStreamId(userId),
      decider: tokenAccountDecider,
      decide: (state) => this.request(userId, paymentId, state, answer),
      metadata: eventMetadata(context),
      // The balance check must see every spend, including those made through other instances.
      readFirst: true,
    });
    const payment = paymentIn(requested.state, paymentId);
    if (payment.status !== 'REFUND_PENDING') return this.ledger.result(userId, requested.state, paymentId, requested);
    this.faults('refund:after-intent');
    let refund: ProviderRefund;
    try {
      refund = await this.provider.refund(payment, providerIdempotencyKey('refund', paymentId));
    } catch (error) {
      return this.endFailed(payment, error, context);
    }
    // Not the money back yet: the payment stays REFUND_PENDING (its tokens reserved) until a retry,
    // the provider's notification or the reconciliation job finds the refund succeeded.
    if (refund.status === 'pending') return this.ledger.result(userId, requested.state, paymentId, requested);
    this.faults('refund:after-provider-refund');
    const recorded = await this.ledger.decideAndAppend(userId, { type: 'RefundPayment', data: { userId, paymentId, providerRefundId: refund.providerRefundId, transactionId: randomUUID(), now: this.now() } }, context);
    return this.ledger.result(userId, recorded.state, paymentId, recorded);
  }

  /**
   * A refund that failed at the provider ends the request it was asked for (`FailRefund`: the payment
   * COMPLETED again, its tokens released) and the client is told how the payment stands after: 409
   * REFUND_FAILED, or the refund when another (an operator's) was recorded meanwhile. Any other error
   * is thrown as it is. A crash before the append leaves the request pending: the retry or the
   * reconciliation job asks again and ends it.
   */
  private async endFailed(pending: Payment, error: unknown, context: CommandContext): Promise<PaymentWriteResult> {
    const failed = failedRefundOf(error);
    if (failed === undefined || !(error instanceof PaymentsError)) throw error;
    this.faults('refund:after-provider-failure');
    const { userId, paymentId } = pending;
    const command = failRefundOf(pending, failed, this.now());
    const ended = await this.ledger.commands.handle({
      streamId: tokenAccountStreamId(userId),
      decider: tokenAccountDecider,
      decide: (state) => decideTokenAccountWithState(command, state),
      metadata: eventMetadata(context),
      // The answer says how the payment stands, which another process may have changed.
      readFirst: true,
    });
    const payment = paymentIn(ended.state, paymentId);
    if (payment.status === 'REFUNDED') return this.ledger.result(userId, ended.state, paymentId, ended);
    const dispute = blockingDisputeOf(ended.state, paymentId);
    const after =
      payment.status === 'COMPLETED'
        ? `the refund request ended: payment ${paymentId} is COMPLETED again and its tokens are the account's`
        : dispute !== undefined
          ? `payment ${paymentId} stays ${payment.status}, its tokens reserved, while dispute ${dispute.disputeId} is ${dispute.status}`
          : `payment ${paymentId} is ${payment.status}: a later refund request is pending`;
    throw new PaymentsError('REFUND_FAILED', `${error.message}; ${after}`, { ...error.details, paymentId, paymentStatus: payment.status });
  }

  /**
   * For a payment whose refund failed before, what the provider has under our key, read only: still
   * that failed refund (REFUND_FAILED, which the decision throws: nothing reserved or recorded, since
   * asking again would fail the same way), a refund an operator made since (recorded when it
   * succeeded; asked for, reserving the tokens, when it is pending), or none (`'none'`: a refund the
   * provider refused as asked left nothing), which is asked for as any refund is: the tokens reserved
   * first, then the provider. Asking the provider to refund here, before the reservation, would
   * return the money for tokens spent since the failure. Asked before the decision, outside the
   * account's lock and once per request, on the state as this process has it: the decision uses the
   * answer only if the payment is still so, and otherwise decides as for any request.
   */
  private async answerAfterFailure(userId: string, paymentId: string): Promise<AnswerAfterFailure> {
    const state = await this.ledger.load(userId);
    return isAfterFailure(state, paymentId) ? this.askAfterFailure(paymentIn(state, paymentId)) : undefined;
  }

  /** What the provider has under our key for a payment whose refund failed before (see `answerAfterFailure`). */
  private async askAfterFailure(payment: Payment): Promise<AnswerAfterFailure> {
    const { paymentId } = payment;
    try {
      return (await this.provider.findRefund(payment, providerIdempotencyKey('refund', paymentId))) ?? 'none';
    } catch (error) {
      if (failedRefundOf(error) === undefined || !(error instanceof PaymentsError)) throw error;
      return new PaymentsError('REFUND_FAILED', `${error.message}; payment ${paymentId} stays COMPLETED, its tokens the account's`, { ...error.details, paymentId, paymentStatus: 'COMPLETED' });
    }
  }

  /**
   * The refund request, except that a refund the provider made without our request (an operator at
   * the provider) is recorded even when the tokens were spent since, from the balance or from the
   * purchase's own lot: refusing it would leave money returned and tokens kept, for good. It takes
   * back what is left of the lot.
   */
  private async request(userId: string, paymentId: string, state: TokenAccountState, answer: AnswerAfterFailure): Promise<readonly TokenAccountEvent[]> {
    const now = this.now();
    // Asked of the provider before the decision; it holds while the payment is still as it was then.
    // A request that read the payment before another's failure was recorded asks now, under the
    // account's lock (a race, so rare): otherwise it would start a new request, which the provider
    // would refuse again, recording a second request and failure.
    const known = isAfterFailure(state, paymentId) ? (answer ?? (await this.askAfterFailure(paymentIn(state, paymentId)))) : undefined;
    if (known !== undefined && known !== 'none') {
      if (known instanceof PaymentsError) throw known;
      if (known.status === 'succeeded') {
        return decideTokenAccount({ type: 'RefundPayment', data: { userId, paymentId, providerRefundId: known.providerRefundId, transactionId: randomUUID(), now } }, state);
      }
    }
    try {
      return decideTokenAccount({ type: 'RequestRefund', data: { userId, paymentId, transactionId: randomUUID(), now } }, state);
    } catch (error) {
      if (!(error instanceof LedgerError && (error.code === 'REFUND_EXCEEDS_BALANCE' || error.code === 'REFUND_EXCEEDS_LOT'))) throw error;
      const order = await this.provider.getOrder(paymentIn(state, paymentId));
      // Refunded whole at the provider: the order, or the part of it captured (`captured_in_part` with its refund).
      if (!(order.status === 'refunded' || order.status === 'captured_in_part') || order.providerRefundId === null) throw error;
      return decideTokenAccount({ type: 'RefundPayment', data: { userId, paymentId, providerRefundId: order.providerRefundId, transactionId: randomUUID(), now } }, state);
    }
  }
}

/**
 * What the provider has, read before the decision, for a payment whose refund failed before: a
 * refund an operator made since, the failure again, or `'none'` (nothing: a new request); undefined
 * when it was not asked.
 */
type AnswerAfterFailure = ProviderRefund | PaymentsError | 'none' | undefined;

/** A COMPLETED payment whose last refund failed at the provider, with no dispute holding it (a dispute's refusal comes first). */
function isAfterFailure(state: TokenAccountState, paymentId: string): boolean {
  const payment = state.payments.get(paymentId);
  return payment?.status === 'COMPLETED' && payment.refundFailure !== null && blockingDisputeOf(state, paymentId) === undefined;
}
