import { PaymentProviderError, type PaymentProvider } from './payment-provider.port.js';

/** How long a provider call may take before the request gives up on it (502, retry later). */
export const PROVIDER_CALL_TIMEOUT_MS = 10_000;

/**
 * The provider with a deadline on every call. Captures and refunds run under the account's stream
 * lock: a provider that hangs must not hold every command of that account, usage included. A call
 * that times out may still complete at the provider; every call is idempotent by order id, so the
 * retry finds its outcome.
 */
export function timeLimited(provider: PaymentProvider, timeoutMs: number = PROVIDER_CALL_TIMEOUT_MS): PaymentProvider {
  const within = <T>(operation: string, call: Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new PaymentProviderError(`${provider.name} provider: ${operation} took longer than ${timeoutMs} ms`, 'timeout')), timeoutMs);
    });
    return Promise.race([call, deadline]).finally(() => clearTimeout(timer));
  };
  return {
    name: provider.name,
    createOrder: (request) => within('createOrder', provider.createOrder(request)),
    clientSecretOf: (orderId) => within('clientSecretOf', provider.clientSecretOf(orderId)),
    capture: (order, idempotencyKey) => within('capture', provider.capture(order, idempotencyKey)),
    getOrder: (order) => within('getOrder', provider.getOrder(order)),
    refund: (order, idempotencyKey) => within('refund', provider.refund(order, idempotencyKey)),
    findRefund: (order, idempotencyKey) => within('findRefund', provider.findRefund(order, idempotencyKey)),
    cancel: (order, idempotencyKey) => within('cancel', provider.cancel(order, idempotencyKey)),
  };
}
