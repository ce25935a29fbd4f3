export * from './command-context.js';
export * from './command-handling.js';
export * from './event-sourcing.errors.js';
export * from './idempotent-request.js';
export * from './read-model-consistency.js';
export * from './snapshots/postgres-snapshot-store.js';
export * from './stream-state-cache.js';
