export * from './database.module.js';
export * from './embedded-postgres.server.js';
export * from './leadership/advisory-lock-leadership.js';
export * from './leadership/interval-task.js';
export * from './leadership/leader-election.js';
export * from './migrations.js';
export * from './numbers.js';
export * from './database-availability.js';
