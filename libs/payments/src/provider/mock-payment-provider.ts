import type { CaptureOutcome } from '@app/ledger';
import type { Pool } from 'pg';
import { PaymentProviderError, type OrderRequest, type PaymentOrder, type PaymentProvider, type ProviderOrder, type ProviderRefund } from './payment-provider.port.js';

/**
 * How the mock answers a capture: `approve`; `decline` (card_declined); `timeout` (nothing captured,
 * the call fails); `error_after_capture` (the money is captured, then the call fails, as when the
 * response is lost or our process dies right after the provider acted).
 */
export type MockBehaviour = 'approve' | 'decline' | 'timeout' | 'error_after_capture';
export const MOCK_BEHAVIOURS: readonly MockBehaviour[] = ['approve', 'decline', 'timeout', 'error_after_capture'];

type OrderStatus = 'created' | 'captured' | 'declined' | 'canceled' | 'refunded';
type OrderRow = { payment_id: string; status: OrderStatus; behaviour: MockBehaviour };
type OrderKeys = { capture_idempotency_key: string | null; refund_idempotency_key: string | null };

/**
 * A provider that behaves like a real one: deterministic ids derived from the payment id, idempotent
 * calls by order id, and configurable failures (per order, or a default for new orders). Its orders
 * are kept in `mock_provider_orders`, outside every ledger transaction, so they survive a restart
 * of the service like a real provider's: a payment captured at the provider before a crash is
 * found captured after it. Each call is one statement (capture: one transaction with the order's
 * row locked), so racing calls from several instances change an order once. Its orders keep the
 * amount they were created for and nothing changes it, so the price the port passes is not compared.
 */
export class MockPaymentProvider implements PaymentProvider {
  readonly name = 'mock';
  /** Capture and refund calls that reached this instance of the provider, for tests and demos. */
  readonly calls = { capture: 0, refund: 0 };

  constructor(
    private readonly pool: Pool,
    private defaultBehaviour: MockBehaviour = 'approve',
  ) {}

  /** Sets how captures of `orderId` behave from now on (or, without an order, of orders created from now on). */
  async behave(behaviour: MockBehaviour, orderId?: string): Promise<void> {
    if (orderId === undefined) {
      this.defaultBehaviour = behaviour;
      return;
    }
    const updated = await this.pool.query('UPDATE mock_provider_orders SET behaviour = $2, updated_at = now() WHERE order_id = $1', [orderId, behaviour]);
    if (updated.rowCount !== 1) throw new Error(`mock provider has no order ${orderId}`);
  }

  async createOrder(request: OrderRequest): Promise<{ orderId: string }> {
    const orderId = `MOCK-ORDER-${request.paymentId}`;
    await this.pool.query(
      `INSERT INTO mock_provider_orders (order_id, payment_id, amount, currency, description, status, behaviour)
       VALUES ($1, $2, $3, $4, $5, 'created', $6) ON CONFLICT (order_id) DO NOTHING`,
      [orderId, request.paymentId, request.amount, request.currency, request.description, this.defaultBehaviour],
    );
    return { orderId };
  }

  /** The mock's buyer approves by its behaviour: there is nothing for a client to hold. */
  clientSecretOf(): Promise<string | null> {
    return Promise.resolve(null);
  }

  async capture({ orderId }: Pick<PaymentOrder, 'orderId'>, idempotencyKey: string): Promise<CaptureOutcome> {
    this.calls.capture += 1;
    const client = await this.pool.connect();
    let order: OrderRow | undefined;
    let next: OrderStatus | undefined;
    try {
      await client.query('BEGIN');
      order = (await client.query<OrderRow>('SELECT payment_id, status, behaviour FROM mock_provider_orders WHERE order_id = $1 FOR UPDATE', [orderId])).rows[0];
      if (order?.status === 'created') {
        next = order.behaviour === 'approve' || order.behaviour === 'error_after_capture' ? 'captured' : order.behaviour === 'decline' ? 'declined' : undefined;
        if (next !== undefined) {
          await client.query('UPDATE mock_provider_orders SET status = $2, capture_idempotency_key = $3, updated_at = now() WHERE order_id = $1', [orderId, next, idempotencyKey]);
        }
      }
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
    if (order === undefined) return { status: 'declined', reason: 'order_not_found' };
    if (order.status === 'captured' || order.status === 'refunded') return captured(order.payment_id);
    if (order.status === 'declined') return { status: 'declined', reason: 'card_declined' };
    if (order.status === 'canceled') return { status: 'declined', reason: 'canceled' };
    // The order was 'created': its behaviour decided what happened (and is now committed).
    switch (order.behaviour) {
      case 'approve':
        return captured(order.payment_id);
      case 'decline':
        return { status: 'declined', reason: 'card_declined' };
      case 'timeout':
        throw new PaymentProviderError(`mock provider timed out capturing ${orderId}`, 'timeout');
      case 'error_after_capture':
        throw new PaymentProviderError(`mock provider failed after capturing ${orderId}`, 'unavailable');
      default: {
        const unknown: never = order.behaviour;
        throw new Error(`unknown mock behaviour ${String(unknown)}`);
      }
    }
  }

  async getOrder({ orderId }: Pick<PaymentOrder, 'orderId'>): Promise<ProviderOrder> {
    const order = (await this.pool.query<OrderRow>('SELECT payment_id, status, behaviour FROM mock_provider_orders WHERE order_id = $1', [orderId])).rows[0];
    if (order === undefined) return { status: 'unknown', providerTransactionId: null, declineReason: null, providerRefundId: null };
    const isCaptured = order.status === 'captured' || order.status === 'refunded';
    return {
      status: order.status,
      providerTransactionId: isCaptured ? captureId(order.payment_id) : null,
      declineReason: order.status === 'declined' ? 'card_declined' : order.status === 'canceled' ? 'canceled' : null,
      providerRefundId: order.status === 'refunded' ? refundId(order.payment_id) : null,
    };
  }

  /** The idempotency keys of the capture and the refund that changed the order (tests check what the workflow sent). */
  async keysOf(orderId: string): Promise<{ capture: string | null; refund: string | null }> {
    const row = (await this.pool.query<OrderKeys>('SELECT capture_idempotency_key, refund_idempotency_key FROM mock_provider_orders WHERE order_id = $1', [orderId])).rows[0];
    return { capture: row?.capture_idempotency_key ?? null, refund: row?.refund_idempotency_key ?? null };
  }

  /** Cancels an order not captured (our expiry); answers the order as it is afterwards, captured if it was. */
  async cancel({ orderId }: Pick<PaymentOrder, 'orderId'>): Promise<ProviderOrder> {
    await this.pool.query(`UPDATE mock_provider_orders SET status = 'canceled', updated_at = now() WHERE order_id = $1 AND status = 'created'`, [orderId]);
    return this.getOrder({ orderId });
  }

  /** The order's refund (the mock makes one per order, whoever asked), or undefined when it is not refunded. */
  async findRefund({ orderId }: Pick<PaymentOrder, 'orderId'>): Promise<ProviderRefund | undefined> {
    const order = (await this.pool.query<{ payment_id: string; status: string }>('SELECT payment_id, status FROM mock_provider_orders WHERE order_id = $1', [orderId])).rows[0];
    return order?.status === 'refunded' ? { providerRefundId: refundId(order.payment_id), status: 'succeeded' } : undefined;
  }

  /** Refunds a captured order once; the key of the call that refunded it is kept, later calls answer the same refund. */
  async refund({ orderId }: Pick<PaymentOrder, 'orderId'>, idempotencyKey: string): Promise<ProviderRefund> {
    this.calls.refund += 1;
    const refunded = await this.pool.query<{ payment_id: string }>(
      `UPDATE mock_provider_orders SET status = 'refunded', refund_idempotency_key = coalesce(refund_idempotency_key, $2), updated_at = now()
        WHERE order_id = $1 AND status IN ('captured', 'refunded') RETURNING payment_id`,
      [orderId, idempotencyKey],
    );
    const row = refunded.rows[0];
    if (row === undefined) throw new PaymentProviderError(`mock provider cannot refund ${orderId}: not captured`, 'rejected');
    return { providerRefundId: refundId(row.payment_id), status: 'succeeded' };
  }
}

function refundId(paymentId: string): string {
  return `MOCK-REFUND-${paymentId}`;
}

function captured(paymentId: string): CaptureOutcome {
  return { status: 'captured', providerTransactionId: captureId(paymentId) };
}

function captureId(paymentId: string): string {
  return `MOCK-CAPTURE-${paymentId}`;
}
