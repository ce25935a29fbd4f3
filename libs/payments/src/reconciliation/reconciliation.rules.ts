import type { CaptureOutcome, Payment } from '@app/ledger';
import type { ProviderOrder } from '../provider/payment-provider.port.js';

/**
 * One step that brings the ledger to what the provider says: record a capture or decline it made,
 * expire a payment it never captured, cancel at the provider an order of a payment the ledger gave up
 * on, call the provider's refund for a refund we asked for, record a refund it made.
 */
export type ReconciliationStep =
  | { readonly kind: 'record-capture'; readonly outcome: CaptureOutcome }
  | { readonly kind: 'expire' }
  | { readonly kind: 'cancel-at-provider' }
  | { readonly kind: 'refund-at-provider' }
  | { readonly kind: 'record-refund'; readonly providerRefundId: string };

/** What to do about a payment: the steps in order, or why it cannot be settled automatically. */
export type Reconciliation = { readonly steps: readonly ReconciliationStep[] } | { readonly unresolved: string };

/**
 * The reconciliation rules, one place for the expiry job, the reconciliation job, webhooks and a late
 * capture. The provider has the last word about money; the ledger follows it:
 *
 * | ledger                   | provider               | steps                                      |
 * |--------------------------|------------------------|--------------------------------------------|
 * | PENDING, FAILED          | captured               | record the capture (credit)                |
 * | PENDING, FAILED          | refunded               | record the capture, then the refund        |
 * | PENDING                  | declined               | record the decline (FAILED)                |
 * | FAILED                   | created                | cancel it at the provider (the reconciler): a buyer who tried another card after the decline must not stay authorised for a payment never captured; captured meanwhile, credited |
 * | PENDING, due             | created, unknown       | expire (the reconciler cancels the order first) |
 * | PENDING, due             | canceled               | expire                                     |
 * | PENDING, not due         | canceled               | record a decline (`canceled`)              |
 * | COMPLETED                | refunded               | record the refund (take back what is left) |
 * | REFUND_PENDING           | captured               | refund at the provider, record the refund; if our refund failed there, end the request (the reconciler; unresolved while a dispute is open) |
 * | REFUND_PENDING           | refunded               | record the refund                          |
 * | COMPLETED/REFUND_PENDING | created/declined/unknown | unresolved: tokens without money; an operator decides |
 * | PENDING, FAILED, COMPLETED, REFUND_PENDING | captured_in_part | unresolved: not the package's price; an operator decides |
 * | FAILED by a lost dispute (`captured_in_part_charged_back`) | captured_in_part | nothing: the bank took back what was captured |
 * | PENDING                  | captured_in_part, refunded | record a decline (`captured_in_part_refunded`): nothing was kept |
 * | COMPLETED/REFUND_PENDING | captured_in_part, refunded | record the refund                          |
 * | REFUNDED, not by a lost dispute | captured, or captured_in_part unrefunded; no refund pending | unresolved: a refund of it failed after it succeeded (the money is the merchant's again, the tokens are gone); an operator decides |
 * | anything else            |                        | nothing                                    |
 *
 * `lostDispute`: whether the refund the ledger recorded is a lost dispute's completion (its refund id
 * is the dispute's): a refund the chargeback completed (ADR 0024) leaves the order captured at the
 * provider (the charge was disputed, never refunded). A refund made at the provider is not, before or
 * after a lost dispute: if the provider no longer reads it refunded, it was returned.
 */
export function reconciliationOf(payment: Payment, order: ProviderOrder, now: Date, { lostDispute }: { readonly lostDispute: boolean } = { lostDispute: false }): Reconciliation {
  const captured: readonly ReconciliationStep[] =
    order.providerTransactionId === null ? [] : [{ kind: 'record-capture', outcome: { status: 'captured', providerTransactionId: order.providerTransactionId } }];
  const refunded: readonly ReconciliationStep[] = order.providerRefundId === null ? [] : [{ kind: 'record-refund', providerRefundId: order.providerRefundId }];
  if (order.status === 'captured_in_part') return capturedInPart(payment, order, lostDispute);
  switch (payment.status) {
    case 'PENDING':
    case 'FAILED':
      if (order.status === 'captured') return { steps: captured };
      if (order.status === 'refunded') return { steps: [...captured, ...refunded] };
      // Open at the provider (Stripe: a declined card may be replaced by another, on the same
      // PaymentIntent): released there, so no later authorisation holds the buyer's money for nothing.
      if (payment.status === 'FAILED') return { steps: order.status === 'created' ? [{ kind: 'cancel-at-provider' }] : [] };
      if (order.status === 'declined') return { steps: [{ kind: 'record-capture', outcome: { status: 'declined', reason: order.declineReason ?? 'declined' } }] };
      if (now.getTime() >= Date.parse(payment.expiresAt)) return { steps: [{ kind: 'expire' }] };
      return { steps: order.status === 'canceled' ? [{ kind: 'record-capture', outcome: { status: 'declined', reason: order.declineReason ?? 'canceled' } }] : [] };
    case 'COMPLETED':
      if (order.status === 'captured') return { steps: [] };
      if (order.status === 'refunded') return { steps: refunded };
      return { unresolved: `payment ${payment.paymentId} is COMPLETED but its order is ${order.status} at the provider` };
    case 'REFUND_PENDING':
      if (order.status === 'captured') return { steps: [{ kind: 'refund-at-provider' }] };
      if (order.status === 'refunded') return { steps: refunded };
      return { unresolved: `payment ${payment.paymentId} is REFUND_PENDING but its order is ${order.status} at the provider` };
    case 'REFUNDED':
      // The money went back to the merchant, not the customer (Stripe: the card was closed since); the
      // ledger took the tokens back when the refund succeeded. Not undone here: the customer asked for
      // the money, and whether to pay it another way or credit the tokens again is the merchant's call.
      return order.status === 'captured' ? refundReturned(payment, order, lostDispute) : { steps: [] };
    default: {
      const unknown: never = payment.status;
      throw new Error(`unknown payment status ${String(unknown)}`);
    }
  }
}

/**
 * A REFUNDED payment whose order the provider no longer reads refunded whole: a refund of it failed
 * after it succeeded (Stripe: the card was closed since), so the money, or part of it, is the
 * merchant's again while the ledger took the tokens back. Not while another refund of the order is
 * pending (the order reads captured until it is decided), nor when a lost dispute completed the
 * refund (the charge was charged back, never refunded).
 */
function refundReturned(payment: Payment, order: ProviderOrder, lostDispute: boolean): Reconciliation {
  if (lostDispute || order.refundPending === true) return { steps: [] };
  return {
    unresolved: `payment ${payment.paymentId} is REFUNDED but the provider no longer reads it refunded whole: a refund of it (the ledger recorded ${String(payment.providerRefundId)}) failed after it succeeded, so the customer did not get all the money back while the tokens were taken; an operator checks its refunds at the provider, then refunds the rest another way or credits tokens back`,
  };
}

/** An order the provider took money for that is not its price (part of it, or another amount or currency): an operator's case, unless what was taken was refunded whole since. */
function capturedInPart(payment: Payment, order: ProviderOrder, lostDispute: boolean): Reconciliation {
  if (payment.status === 'REFUNDED') return order.providerRefundId === null ? refundReturned(payment, order, lostDispute) : { steps: [] };
  // Failed by its lost dispute: the bank took back what was captured, nothing was kept (ADR 0024).
  if (payment.status === 'FAILED' && payment.failureReason === CHARGED_BACK_IN_PART) return { steps: [] };
  if (order.providerRefundId === null) {
    return { unresolved: `payment ${payment.paymentId} is ${payment.status} but the provider took money that is not its price (${payment.amount} ${payment.currency}): part of its order, or an order changed to another amount or currency` };
  }
  // That part was refunded whole: nothing was kept.
  if (payment.status === 'PENDING') return { steps: [{ kind: 'record-capture', outcome: { status: 'declined', reason: 'captured_in_part_refunded' } }] };
  if (payment.status === 'FAILED') return { steps: [] };
  return { steps: [{ kind: 'record-refund', providerRefundId: order.providerRefundId }] };
}

/** Why a payment captured in part failed when a dispute of it was lost: the bank took back what was captured. */
export const CHARGED_BACK_IN_PART = 'captured_in_part_charged_back';
