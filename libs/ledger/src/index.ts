export * from './decider.js';
export * from './ledger.errors.js';
export * from './ledger.limits.js';
export * from './token-account/token-account.commands.js';
export * from './token-account/token-account.decide.js';
export * from './token-account/token-account.decider.js';
export * from './token-account/token-account.events.js';
export * from './token-account/token-account.state.js';
