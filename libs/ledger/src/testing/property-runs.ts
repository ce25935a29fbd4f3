import fc from 'fast-check';

/**
 * How many random cases a property spec tries: `runs`, or fewer when fast-check's global
 * configuration caps them. Only mutation testing does (`.config/stryker/fast-check.setup.js`), where
 * the specs run once per mutant and each mutant needs one failing case, not a hundred; `npm test`
 * runs them all. Explicit `numRuns` would otherwise override the global configuration.
 */
export function propertyRuns(runs: number): number {
  const cap = fc.readConfigureGlobal().numRuns;
  return cap === undefined ? runs : Math.min(runs, cap);
}
