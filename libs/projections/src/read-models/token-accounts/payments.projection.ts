import type { RecordedEvent } from '@app/event-store';
import { PAYMENT_TIMED_OUT, type PaymentDisputeClosed, type PaymentDisputeOpened, type PaymentEvent, type TokensRefunded } from '@app/ledger';
import type { RowChange } from '../../projection.js';

const INSERT_PAYMENT = `
  INSERT INTO payments (id, user_id, status, package_id, tokens_purchased, amount, currency, provider, order_id, metadata,
                        created_at, updated_at, expires_at, last_event_id, last_event_revision)
  VALUES ($1, $2, 'PENDING', $3, $4, $5, $6, $7, $8, '{}'::jsonb, $9, $9, $10, $11, $12)`;

const UPDATE_PAYMENT = `
  UPDATE payments SET status = $2, provider_transaction_id = coalesce($3, provider_transaction_id), metadata = $4::jsonb,
                      updated_at = $5, last_event_id = $6, last_event_revision = $7
   WHERE id = $1`;

/**
 * The `payments` row of a payment event. Every value comes from the event; `metadata` holds what the
 * classic table kept there: `error` for a FAILED payment ('Payment timed out' when it expired), the
 * provider's refund id and the tokens taken back for a REFUNDED one; nothing while REFUND_PENDING;
 * `refundError` for a COMPLETED one whose refund failed at the provider.
 */
export function projectPaymentEvent(recorded: RecordedEvent, event: PaymentEvent): readonly RowChange[] {
  const trace = [recorded.id, recorded.revision.toString()];
  switch (event.type) {
    case 'PaymentInitiated': {
      const data = event.data;
      return [
        {
          text: INSERT_PAYMENT,
          values: [data.paymentId, data.userId, data.packageId, data.tokens, data.amount, data.currency, data.provider, data.orderId, data.occurredAt, data.expiresAt, ...trace],
        },
      ];
    }
    case 'PaymentCaptured':
      return [update(event.data.paymentId, 'COMPLETED', event.data.providerTransactionId, {}, event.data.occurredAt, trace)];
    case 'PaymentFailed':
      return [update(event.data.paymentId, 'FAILED', null, { error: event.data.reason }, event.data.occurredAt, trace)];
    case 'PaymentExpired':
      return [update(event.data.paymentId, 'FAILED', null, { error: PAYMENT_TIMED_OUT }, event.data.occurredAt, trace)];
    case 'PaymentRefundRequested':
      // The refund is asked for and its tokens reserved; the provider's refund is not recorded yet.
      return [update(event.data.paymentId, 'REFUND_PENDING', null, {}, event.data.occurredAt, trace)];
    case 'PaymentRefundFailed':
      // The request ended: captured again, its tokens released; why the provider's refund failed.
      return [update(event.data.paymentId, 'COMPLETED', null, { refundError: event.data.reason }, event.data.occurredAt, trace)];
    case 'PaymentRefunded': {
      const { providerRefundId, tokensDebited } = event.data;
      return [update(event.data.paymentId, 'REFUNDED', null, { providerRefundId, tokensDebited }, event.data.occurredAt, trace)];
    }
    default: {
      const unknown: never = event;
      throw new Error(`payments cannot project ${JSON.stringify(unknown)}`);
    }
  }
}

function update(paymentId: string, status: string, providerTransactionId: string | null, metadata: object, at: string, trace: readonly string[]): RowChange {
  return { text: UPDATE_PAYMENT, values: [paymentId, status, providerTransactionId, JSON.stringify(metadata), at, ...trace] };
}

const ADD_LATE_REFUND = `
  UPDATE payments SET metadata = jsonb_set(metadata, '{tokensDebited}', to_jsonb(coalesce((metadata->>'tokensDebited')::bigint, 0) + $2)) WHERE id = $1`;

/**
 * Tokens a hold held when the provider refunded the payment, taken when the hold gave them back
 * (`TokensRefunded` with `heldAtRefund`): they add to the `tokensDebited` the refund recorded.
 */
export function projectLateRefund(event: TokensRefunded): readonly RowChange[] {
  if (event.data.heldAtRefund !== true) return [];
  return [{ text: ADD_LATE_REFUND, values: [event.data.paymentId, event.data.amount] }];
}

const UPDATE_DISPUTE = 'UPDATE payments SET dispute_id = $2, dispute_status = $3 WHERE id = $1';
const UPDATE_SHORTFALL = 'UPDATE user_tokens SET shortfall = $2 WHERE user_id = $1';

/**
 * A dispute's mark on its `payments` row (its id and status: open, won or lost; the row's status
 * stays what the payment's lifecycle made it), and a close's shortfall on `user_tokens`.
 */
export function projectDisputeEvent(event: PaymentDisputeOpened | PaymentDisputeClosed): readonly RowChange[] {
  const { paymentId, disputeId } = event.data;
  if (event.type === 'PaymentDisputeOpened') return [{ text: UPDATE_DISPUTE, values: [paymentId, disputeId, 'open'] }];
  return [
    { text: UPDATE_DISPUTE, values: [paymentId, disputeId, event.data.outcome] },
    { text: UPDATE_SHORTFALL, values: [event.data.userId, event.data.shortfallAfter] },
  ];
}

/** The shortfall a cover leaves on `user_tokens`. */
export function projectShortfall(userId: string, shortfallAfter: number): RowChange {
  return { text: UPDATE_SHORTFALL, values: [userId, shortfallAfter] };
}
