import type { ClientBase } from 'pg';

/**
 * What the PostgreSQL adapter offers beyond the port, to code whose tables share its database (the
 * projection engine, verification). An adapter without it (EventStoreDB) leaves
 * `EventStore.postgres` undefined, and callers take their portable path.
 */
export interface PostgresCapabilities {
  /** Blocks appends to `streamId` until the transaction of `client` ends; a stream with no row yet is not held. */
  holdStream(client: ClientBase, streamId: string): Promise<void>;
}
