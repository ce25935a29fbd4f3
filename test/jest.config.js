// One Jest run covers unit specs beside the code and end-to-end specs under test/.
// NestJS 12 and several of its dependencies are ES modules, so Jest runs in its native ESM mode
// (node --experimental-vm-modules, set by `npm test`). One embedded PostgreSQL serves the whole run
// (test/support/global-setup.js); each test file gets its own database cloned from a migrated
// template, so files never share rows.
import { resolve } from 'node:path';

/** @type {import('jest').Config} */
export default {
  rootDir: resolve(import.meta.dirname, '..'),
  roots: ['<rootDir>/apps', '<rootDir>/libs', '<rootDir>/test'],
  testRegex: '.*\\.(spec|e2e-spec)\\.ts$',
  moduleFileExtensions: ['ts', 'js', 'json'],
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/test/tsconfig.spec.json', useESM: true }],
  },
  moduleNameMapper: {
    '^@app/(ledger|event-store|event-sourcing|projections|database|token-accounts|operations|payments|auth|audit|testing)$': '<rootDir>/libs/$1/src/index.ts',
    '^@token-ledger/client$': '<rootDir>/libs/client/src/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testEnvironment: 'node',
  globalSetup: '<rootDir>/test/support/global-setup.js',
  globalTeardown: '<rootDir>/test/support/global-teardown.js',
  maxWorkers: 2,
  testTimeout: 30000,
};
