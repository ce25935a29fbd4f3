export * from './as-of.js';
export * from './audit-bundle.js';
export * from './canonical-json.js';
export * from './hash-chain.js';
export * from './bundle-file.js';
export * from './bundle-check.js';
