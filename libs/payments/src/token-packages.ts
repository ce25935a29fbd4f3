import { LOT_PRIORITY_DEFAULT, type PurchaseLotTerms } from '@app/ledger';

/** A package of tokens at a price set by the server: clients name a package, never a price. */
export type TokenPackage = {
  readonly id: string;
  readonly tokens: number;
  /** In the smallest unit the provider's API takes for `currency` (cents for USD, yen for JPY): Stripe's, where it differs from ISO 4217's. */
  readonly price: number;
  readonly currency: string;
  /** The lifetime of the tokens bought, in days from the capture; absent: they never expire. */
  readonly expiresInDays?: number;
  /** Their draw-down priority (lower is spent first); absent: the ledger's default for paid credit. */
  readonly priority?: number;
};

export const DEFAULT_TOKEN_PACKAGES: readonly TokenPackage[] = [
  { id: 'starter', tokens: 100, price: 500, currency: 'USD' },
  { id: 'standard', tokens: 500, price: 2000, currency: 'USD' },
  { id: 'pro', tokens: 2000, price: 7000, currency: 'USD' },
];

/**
 * The lot terms of a package as configured now: its priority and lifetime. A payment keeps those it
 * was opened with, and its capture credits the lot on them; one opened before payments kept them is
 * credited on the terms configured at its capture (the default terms for a package no longer configured).
 */
export function packageLotTerms(packages: readonly TokenPackage[], packageId: string): PurchaseLotTerms {
  const offer = packages.find((candidate) => candidate.id === packageId);
  return { priority: offer?.priority ?? LOT_PRIORITY_DEFAULT, expiresInDays: offer?.expiresInDays ?? null };
}
