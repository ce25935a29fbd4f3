export * from './account-rebuild.js';
export * from './event-by-event.js';
export * from './checkpoints.js';
export * from './inline-projections.js';
export * from './projection.js';
export * from './projection-failures.js';
export * from './projection-rebuild.js';
export * from './projection-registry.js';
export * from './projection-runner.js';
export * from './projection-status.js';
export * from './projections.errors.js';
export * from './shadow-tables.js';
// The token_accounts read model (user_tokens, token_transactions, payments): token-accounts, payments
// and operations all read or check it, so it lives here rather than in one of those feature libs.
export * from './read-models/token-accounts/payments.projection.js';
export * from './read-models/token-accounts/token-accounts.bulk.js';
export * from './read-models/token-accounts/token-accounts.projection.js';
export * from './read-models/token-accounts/token-transaction.view.js';
