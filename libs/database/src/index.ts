export * from './database.module.js';
export * from './embedded-postgres.server.js';
export * from './migrations.js';
export * from './numbers.js';
