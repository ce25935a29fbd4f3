import { randomUUID } from 'node:crypto';
import type { FailRefund, Payment } from '@app/ledger';
import { PaymentsError } from '../payments.errors.js';

/** Why the provider's refund failed, as `FailRefund` records it. */
export type FailedRefund = { readonly providerRefundId: string | null; readonly reason: string };

/**
 * The failure a REFUND_FAILED from the provider reports, which ends the refund request (the payment
 * COMPLETED again, its tokens released: ADR 0021): the refund failed or was canceled, and no other
 * refund returned the money. Undefined for any other error, and for a refund refused while the charge
 * is disputed (`charge_disputed`): that request stays REFUND_PENDING, for the dispute's outcome to end.
 */
export function failedRefundOf(error: unknown): FailedRefund | undefined {
  if (!(error instanceof PaymentsError && error.code === 'REFUND_FAILED')) return undefined;
  const { providerRefundId, providerStatus, failureReason } = error.details;
  if (providerStatus === 'charge_disputed') return undefined;
  return {
    providerRefundId: typeof providerRefundId === 'string' ? providerRefundId : null,
    reason: `${String(providerStatus ?? 'failed')}: ${String(failureReason ?? 'no reason given')}`,
  };
}

/** The command that ends `pending`'s refund request with `failed`: for the request as it stood when the provider was asked (`requestedAt`). */
export function failRefundOf(pending: Payment, failed: FailedRefund, now: Date): FailRefund {
  return { type: 'FailRefund', data: { userId: pending.userId, paymentId: pending.paymentId, requestedAt: pending.updatedAt, ...failed, transactionId: randomUUID(), now } };
}
