import type { Projection } from './projection.js';
import { UnknownProjectionError } from './projections.errors.js';
import { tokenAccountsProjection } from './read-models/token-accounts/token-accounts.projection.js';

/**
 * Every projection this service runs. Status, rebuilds, per-account rebuilds and verification work
 * on this list, never on hard-coded names: a new projection is registered by adding it here.
 */
export const PROJECTIONS: readonly Projection[] = [tokenAccountsProjection];

export function findProjection(name: string, projections: readonly Projection[] = PROJECTIONS): Projection {
  const found = projections.find((projection) => projection.name === name);
  if (found === undefined) throw new UnknownProjectionError(name, projections.map((known) => known.name));
  return found;
}
