export * from './add-tokens/add-tokens.command.js';
export * from './adjust-tokens/adjust-tokens.command.js';
export * from './use-tokens/use-tokens.command.js';
export * from './get-balance/get-balance.query.js';
export * from './get-transactions/get-transactions.query.js';
export * from './token-accounts.module.js';
export * from './transaction.view.js';
