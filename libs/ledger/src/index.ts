export * from './decider';
export * from './ledger.errors';
export * from './ledger.limits';
export * from './token-account/token-account.commands';
export * from './token-account/token-account.decide';
export * from './token-account/token-account.decider';
export * from './token-account/token-account.events';
export * from './token-account/token-account.state';
