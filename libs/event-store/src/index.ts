export * from './event-store.port.js';
export * from './position.js';
export * from './postgres/postgres-event-store.js';
export * from './eventstoredb/eventstoredb-event-store.js';
