import type { MockBehaviour } from './provider/mock-payment-provider.js';
import type { TokenPackage } from './token-packages.js';

export const PAYMENTS_OPTIONS = Symbol('PAYMENTS_OPTIONS');

export type PaymentsOptions = {
  /** The provider adapter; `mock` is the only one built in. */
  readonly provider: 'mock';
  readonly mockBehaviour: MockBehaviour;
  readonly packages: readonly TokenPackage[];
  readonly pendingTtlMs: number;
  /** How many payments a user may have open (PENDING, before expiry) at once; one more is 409 TOO_MANY_PENDING_PAYMENTS. */
  readonly pendingPaymentsMax: number;
  /** Run the pending-payment expiry job in this process, every `jobIntervalMs`. */
  readonly jobsEnabled: boolean;
  readonly jobIntervalMs: number;
  /** The clock; tests inject one. */
  readonly now?: () => Date;
};
