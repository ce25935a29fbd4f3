// Jest as Stryker runs it: the project's configuration (test/jest.config.js) without its global
// setup, and with fewer random cases per property spec from a fixed seed (fast-check.setup.js).
// Stryker calls Jest once per mutant in one process, and the global setup would start a new
// PostgreSQL each time; run-mutation.mjs starts one for the whole run instead, for the targets whose
// specs need a database. Each target's configuration narrows `roots` to the specs it measures by.
import baseConfig from '../../test/jest.config.js';

/** @type {import('jest').Config} */
export default {
  ...baseConfig,
  globalSetup: undefined,
  globalTeardown: undefined,
  maxWorkers: 1,
  setupFiles: [...(baseConfig.setupFiles ?? []), '<rootDir>/.config/stryker/fast-check.setup.js'],
};
