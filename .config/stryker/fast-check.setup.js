// Jest setup for mutation testing only (.config/stryker/jest.config.js), not for `npm test`.
// Stryker runs every spec that reaches a mutant once per mutant, so the property specs
// (`*.property.spec.ts`) cost most of a ledger run. Here they try fewer random cases
// (`propertyRuns` in libs/ledger/src/testing/property-runs.ts) from a fixed seed, so that a mutant is
// killed or survives the same way on every run and the committed incremental results stay true.
// The specs that sample with a seed of their own (reachability) are unchanged. docs/quality.md says
// why this does not lower the score.
import fc from 'fast-check';

fc.configureGlobal({ numRuns: 30, seed: 20261202 });
