export * from './checkpoints.js';
export * from './projection.js';
export * from './projection-runner.js';
export * from './token-accounts.projection.js';
export * from './payments.projection.js';
