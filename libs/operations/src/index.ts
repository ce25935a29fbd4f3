export * from './account-audit.js';
export * from './account-verification.js';
export * from './operations.errors.js';
export * from './operations.module.js';
export * from './projections-admin.js';
