import type { Payment, PaymentStatus } from '@app/ledger';

/** A payment as the API shows it; the same shape from the decided state and from the `payments` read model. */
export type PaymentView = {
  readonly paymentId: string;
  readonly userId: string;
  readonly orderId: string;
  readonly packageId: string;
  readonly status: PaymentStatus;
  readonly tokens: number;
  /** Price in minor units of `currency`. */
  readonly amount: number;
  readonly currency: string;
  readonly provider: string;
  readonly providerTransactionId: string | null;
  readonly metadata: Readonly<Record<string, string | number>>;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly expiresAt: string;
};

/** What a capture or refund returns: the payment, the balance it left, and whether reads show it yet. */
export type PaymentWriteResult = {
  readonly payment: PaymentView;
  readonly balance: number;
  readonly position: string | null;
  readonly readModelUpToDate: boolean;
};

/** The view of a payment in a decided state; `metadata` as the projection writes it. */
export function paymentView(payment: Payment): PaymentView {
  return {
    paymentId: payment.paymentId,
    userId: payment.userId,
    orderId: payment.orderId,
    packageId: payment.packageId,
    status: payment.status,
    tokens: payment.tokens,
    amount: payment.amount,
    currency: payment.currency,
    provider: payment.provider,
    providerTransactionId: payment.providerTransactionId,
    metadata: metadataOf(payment),
    createdAt: payment.occurredAt,
    updatedAt: payment.updatedAt,
    expiresAt: payment.expiresAt,
  };
}

function metadataOf(payment: Payment): Record<string, string | number> {
  if (payment.status === 'FAILED' && payment.failureReason !== null) return { error: payment.failureReason };
  if (payment.status === 'COMPLETED' && payment.refundFailure !== null) return { refundError: payment.refundFailure };
  if (payment.status === 'REFUNDED' && payment.providerRefundId !== null && payment.tokensDebited !== null) {
    return { providerRefundId: payment.providerRefundId, tokensDebited: payment.tokensDebited };
  }
  return {};
}
