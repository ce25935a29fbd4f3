import type { CaptureOutcome } from '@app/ledger';
import { PaymentsError } from '../payments.errors.js';
import type { CreatedOrder, PaymentProvider, ProviderOrder, ProviderRefund } from './payment-provider.port.js';

/**
 * `PAYMENT_PROVIDER=none`: a service that sells no tokens itself (purchases are recorded by a
 * backend with its own payments). Creating a payment is refused before anything is written; with no
 * orders, nothing else reaches it, and if a payment made under another provider does, it is refused
 * the same way rather than settled against a provider that is not there.
 */
export class NoPaymentProvider implements PaymentProvider {
  readonly name = 'none';

  createOrder(): Promise<CreatedOrder> {
    return Promise.reject(disabled());
  }

  clientSecretOf(): Promise<string | null> {
    return Promise.reject(disabled());
  }

  capture(): Promise<CaptureOutcome> {
    return Promise.reject(disabled());
  }

  getOrder(): Promise<ProviderOrder> {
    return Promise.reject(disabled());
  }

  refund(): Promise<ProviderRefund> {
    return Promise.reject(disabled());
  }

  findRefund(): Promise<ProviderRefund | undefined> {
    return Promise.reject(disabled());
  }

  cancel(): Promise<ProviderOrder> {
    return Promise.reject(disabled());
  }
}

function disabled(): PaymentsError {
  return new PaymentsError('PAYMENTS_DISABLED', 'this service takes no payments (PAYMENT_PROVIDER=none); purchases are recorded by a service credential');
}
