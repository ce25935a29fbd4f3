import type { Projection } from './projection.js';
import { tokenAccountsProjection } from './token-accounts.projection.js';

/**
 * Every projection this service runs. Status, rebuilds, per-account rebuilds and verification work
 * on this list, never on hard-coded names: a new projection is registered by adding it here.
 */
export const PROJECTIONS: readonly Projection[] = [tokenAccountsProjection];

/** The named projection is not registered. */
export class UnknownProjectionError extends Error {
  override readonly name = 'UnknownProjectionError';

  constructor(
    readonly projection: string,
    known: readonly string[],
  ) {
    super(`no projection is named ${projection}; known: ${known.join(', ')}`);
  }
}

export function findProjection(name: string, projections: readonly Projection[] = PROJECTIONS): Projection {
  const found = projections.find((projection) => projection.name === name);
  if (found === undefined) throw new UnknownProjectionError(name, projections.map((known) => known.name));
  return found;
}
