import type { PaymentFaultPoint } from './payment-faults.js';
import type { MockBehaviour } from './provider/mock-payment-provider.js';
import type { TokenPackage } from './token-packages.js';

export const PAYMENTS_OPTIONS = Symbol('PAYMENTS_OPTIONS');

export type PaymentsOptions = {
  /** The provider adapter; `mock` is the only one built in. */
  readonly provider: 'mock';
  readonly mockBehaviour: MockBehaviour;
  readonly packages: readonly TokenPackage[];
  readonly pendingTtlMs: number;
  /** Run the payment jobs in this process: expiry every `jobIntervalMs`, reconciliation every `reconciliationIntervalMs`. */
  readonly jobsEnabled: boolean;
  readonly jobIntervalMs: number;
  readonly reconciliationIntervalMs: number;
  /** How far back the reconciliation job compares COMPLETED and FAILED payments with the provider. */
  readonly reconciliationLookbackMs: number;
  /** Kill the process with SIGKILL at this point of the payment flows (crash tests of the built service only). */
  readonly crashAt?: PaymentFaultPoint;
  /** The clock; tests inject one. */
  readonly now?: () => Date;
};
