export * from './synthetic-history.js';
