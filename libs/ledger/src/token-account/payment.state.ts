import { isLotPriority, PURCHASE_LIFETIME_DAYS_MAX } from '../ledger.limits.js';
import type { PurchaseLotTerms } from './payment.commands.js';
import type { PaymentInitiated } from './payment.events.js';

/** REFUND_PENDING: a refund was recorded as asked for and its tokens are reserved; the provider's refund is not recorded yet. */
export type PaymentStatus = 'PENDING' | 'COMPLETED' | 'FAILED' | 'REFUND_PENDING' | 'REFUNDED';

/** A payment as the token account knows it: what was initiated, and where its lifecycle stands. */
export type Payment = PaymentInitiated['data'] & {
  readonly status: PaymentStatus;
  /** Why a FAILED payment failed: the provider declined it, or it expired while PENDING. */
  readonly failure: 'declined' | 'expired' | null;
  readonly failureReason: string | null;
  /** Why the last refund asked for failed at the provider (`PaymentRefundFailed`) while the payment is COMPLETED again; null before any failed, and once another refund is asked for or made. */
  readonly refundFailure: string | null;
  readonly providerTransactionId: string | null;
  readonly providerRefundId: string | null;
  /** Tokens the refund took back (normally `tokens`), including those taken later, when a hold gave them back. */
  readonly tokensDebited: number | null;
  readonly updatedAt: string;
};

export const PAYMENT_STATUSES: readonly PaymentStatus[] = ['PENDING', 'COMPLETED', 'FAILED', 'REFUND_PENDING', 'REFUNDED'];

/** The description of a refund's `refund` transaction. */
export function refundDescription(payment: Pick<Payment, 'packageId'>): string {
  return `Refund of token package ${payment.packageId}`;
}

/** A package's lot terms as a payment keeps them: a priority in range, and a lifetime of whole days (1 to PURCHASE_LIFETIME_DAYS_MAX), or none. */
export function areLotTerms(terms: { readonly priority: unknown; readonly expiresInDays: unknown }): terms is PurchaseLotTerms {
  const days = terms.expiresInDays;
  return typeof terms.priority === 'number' && isLotPriority(terms.priority) && (days === null || (typeof days === 'number' && Number.isSafeInteger(days) && days >= 1 && days <= PURCHASE_LIFETIME_DAYS_MAX));
}
