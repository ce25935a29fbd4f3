import type { PaymentFaultPoint } from './payment-faults.js';
import type { MockBehaviour } from './provider/mock-payment-provider.js';
import type { StripeSettings } from './provider/stripe/stripe-payment-provider.js';
import type { TokenPackage } from './token-packages.js';

export const PAYMENTS_OPTIONS = Symbol('PAYMENTS_OPTIONS');
/** The Stripe webhook verifier, or null when the provider is not Stripe. */
export const STRIPE_WEBHOOKS = Symbol('STRIPE_WEBHOOKS');

/** The provider adapters built in: `mock` (development and tests), `none` (no payments) and `stripe`. */
export const PAYMENT_PROVIDERS = ['mock', 'none', 'stripe'] as const;
export type PaymentProviderName = (typeof PAYMENT_PROVIDERS)[number];

export type PaymentsOptions = {
  readonly provider: PaymentProviderName;
  readonly mockBehaviour: MockBehaviour;
  /** Required with `provider: 'stripe'`. */
  readonly stripe?: StripeSettings;
  readonly packages: readonly TokenPackage[];
  readonly pendingTtlMs: number;
  /** How many payments a user may have open (PENDING, before expiry) at once; one more is 409 TOO_MANY_PENDING_PAYMENTS. */
  readonly pendingPaymentsMax: number;
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
  /** Hears each report of a payment that disagrees with its provider in a way no rule settles (the service's metrics). */
  readonly onUnresolved?: (source: UnresolvedSource) => void;
};

/** Who reported a payment left to an operator: the reconciliation job (each run, within its look-back), or a provider's webhook. */
export type UnresolvedSource = 'reconciliation' | 'webhook';
