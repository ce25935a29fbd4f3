import type { CaptureOutcome } from '@app/ledger';
import { PaymentProviderError, type OrderRequest, type PaymentProvider, type ProviderOrder } from './payment-provider.port.js';

/**
 * How the mock answers a capture: `approve`; `decline` (card_declined); `timeout` (nothing captured,
 * the call fails); `error_after_capture` (the money is captured, then the call fails, as when the
 * response is lost or our process dies right after the provider acted).
 */
export type MockBehaviour = 'approve' | 'decline' | 'timeout' | 'error_after_capture';
export const MOCK_BEHAVIOURS: readonly MockBehaviour[] = ['approve', 'decline', 'timeout', 'error_after_capture'];

type MockOrder = {
  readonly request: OrderRequest;
  status: 'created' | 'captured' | 'declined' | 'refunded';
  behaviour: MockBehaviour;
};

/**
 * An in-memory provider that behaves like a real one: deterministic ids derived from the payment id,
 * idempotent calls by order id, and configurable failures (per order, or a default for new orders).
 * Its orders live in this process only: after a restart it knows none (`getOrder` says 'unknown').
 */
export class MockPaymentProvider implements PaymentProvider {
  readonly name = 'mock';
  private readonly orders = new Map<string, MockOrder>();
  /** Capture and refund calls that reached the provider, for tests and demos. */
  readonly calls = { capture: 0, refund: 0 };

  constructor(private defaultBehaviour: MockBehaviour = 'approve') {}

  /** Sets how captures of `orderId` behave from now on (or, without an order, of orders created from now on). */
  behave(behaviour: MockBehaviour, orderId?: string): void {
    if (orderId === undefined) {
      this.defaultBehaviour = behaviour;
      return;
    }
    this.order(orderId).behaviour = behaviour;
  }

  createOrder(request: OrderRequest): Promise<{ orderId: string }> {
    const orderId = `MOCK-ORDER-${request.paymentId}`;
    if (!this.orders.has(orderId)) this.orders.set(orderId, { request, status: 'created', behaviour: this.defaultBehaviour });
    return Promise.resolve({ orderId });
  }

  capture(orderId: string): Promise<CaptureOutcome> {
    this.calls.capture += 1;
    const order = this.orders.get(orderId);
    if (order === undefined) return Promise.resolve({ status: 'declined', reason: 'order_not_found' });
    if (order.status === 'captured' || order.status === 'refunded') return Promise.resolve(this.captured(order));
    if (order.status === 'declined') return Promise.resolve({ status: 'declined', reason: 'card_declined' });
    switch (order.behaviour) {
      case 'approve':
        order.status = 'captured';
        return Promise.resolve(this.captured(order));
      case 'decline':
        order.status = 'declined';
        return Promise.resolve({ status: 'declined', reason: 'card_declined' });
      case 'timeout':
        return Promise.reject(new PaymentProviderError(`mock provider timed out capturing ${orderId}`, 'timeout'));
      case 'error_after_capture':
        order.status = 'captured';
        return Promise.reject(new PaymentProviderError(`mock provider failed after capturing ${orderId}`, 'unavailable'));
      default: {
        const unknown: never = order.behaviour;
        throw new Error(`unknown mock behaviour ${String(unknown)}`);
      }
    }
  }

  getOrder(orderId: string): Promise<ProviderOrder> {
    const order = this.orders.get(orderId);
    if (order === undefined) return Promise.resolve({ status: 'unknown', providerTransactionId: null, declineReason: null });
    const captured = order.status === 'captured' || order.status === 'refunded';
    return Promise.resolve({
      status: order.status,
      providerTransactionId: captured ? captureId(order) : null,
      declineReason: order.status === 'declined' ? 'card_declined' : null,
    });
  }

  refund(orderId: string): Promise<{ providerRefundId: string }> {
    this.calls.refund += 1;
    const order = this.orders.get(orderId);
    if (order === undefined || (order.status !== 'captured' && order.status !== 'refunded')) {
      return Promise.reject(new PaymentProviderError(`mock provider cannot refund ${orderId}: not captured`, 'rejected'));
    }
    order.status = 'refunded';
    return Promise.resolve({ providerRefundId: `MOCK-REFUND-${order.request.paymentId}` });
  }

  private order(orderId: string): MockOrder {
    const order = this.orders.get(orderId);
    if (order === undefined) throw new Error(`mock provider has no order ${orderId}`);
    return order;
  }

  private captured(order: MockOrder): CaptureOutcome {
    return { status: 'captured', providerTransactionId: captureId(order) };
  }
}

function captureId(order: MockOrder): string {
  return `MOCK-CAPTURE-${order.request.paymentId}`;
}
