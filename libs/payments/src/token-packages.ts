/** A package of tokens at a price set by the server: clients name a package, never a price. */
export type TokenPackage = {
  readonly id: string;
  readonly tokens: number;
  /** Minor units of `currency` (cents for USD). */
  readonly price: number;
  readonly currency: string;
};

export const DEFAULT_TOKEN_PACKAGES: readonly TokenPackage[] = [
  { id: 'starter', tokens: 100, price: 500, currency: 'USD' },
  { id: 'standard', tokens: 500, price: 2000, currency: 'USD' },
  { id: 'pro', tokens: 2000, price: 7000, currency: 'USD' },
];
