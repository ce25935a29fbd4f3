export * from './commands/add-tokens.command.js';
export * from './commands/adjust-tokens.command.js';
export * from './commands/use-tokens.command.js';
export * from './queries/get-balance.query.js';
export * from './queries/get-transactions.query.js';
export * from './token-accounts.module.js';
export * from './transaction.view.js';
