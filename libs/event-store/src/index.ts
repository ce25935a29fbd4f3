export * from './event-store.port.js';
export * from './position.js';
export * from './stream-reader.js';
export * from './postgres/postgres-event-store.js';
export type { EventAddress, GlobalPositionChunk, GlobalPositionSpan, PositionRange, PostgresCapabilities, SnapshotRow, StreamFromSnapshot } from './postgres/postgres-capabilities.js';
export type { AppendTransactionHook } from './postgres/append-transaction-hook.js';
export { DEFAULT_GROUP_COMMIT_OPTIONS, type GroupCommitOptions, type GroupCommitStats } from './postgres/group-commit.js';
export * from './eventstoredb/eventstoredb-event-store.js';
