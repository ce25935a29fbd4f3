import type { MockBehaviour } from './provider/mock-payment-provider.js';
import type { TokenPackage } from './token-packages.js';

export const PAYMENTS_OPTIONS = Symbol('PAYMENTS_OPTIONS');

/** The provider adapters built in: `mock` (development and tests) and `none` (no payments). */
export const PAYMENT_PROVIDERS = ['mock', 'none'] as const;
export type PaymentProviderName = (typeof PAYMENT_PROVIDERS)[number];

export type PaymentsOptions = {
  readonly provider: PaymentProviderName;
  readonly mockBehaviour: MockBehaviour;
  readonly packages: readonly TokenPackage[];
  readonly pendingTtlMs: number;
  /** Run the pending-payment expiry job in this process, every `jobIntervalMs`. */
  readonly jobsEnabled: boolean;
  readonly jobIntervalMs: number;
  /** The clock; tests inject one. */
  readonly now?: () => Date;
};
