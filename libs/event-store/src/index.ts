export * from './event-store.port.js';
export * from './position.js';
export * from './postgres/postgres-event-store.js';
export { DEFAULT_GROUP_COMMIT_OPTIONS, type GroupCommitOptions, type GroupCommitStats } from './postgres/group-commit.js';
export * from './eventstoredb/eventstoredb-event-store.js';
