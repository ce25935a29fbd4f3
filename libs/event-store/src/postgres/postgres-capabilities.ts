import type { ClientBase } from 'pg';
import type { RecordedEvent } from '../event-store.port.js';

/** A `snapshots` row as stored: the checksum is the caller's to check. */
export type SnapshotRow = {
  readonly revision: bigint;
  readonly lastEventId: string;
  readonly state: string;
  readonly checksum: string;
};

/** A stream read from its newest snapshot: the events start AT the snapshot's revision (to check it against its event), or at 0 without one. */
export type StreamFromSnapshot = {
  readonly snapshot: SnapshotRow | undefined;
  /** At most `maxCount` events; a full page means there may be more. */
  readonly events: readonly RecordedEvent[];
};

/**
 * What the PostgreSQL adapter offers beyond the port, to code whose tables share its database (the
 * projection engine, verification). An adapter without it (EventStoreDB) leaves
 * `EventStore.postgres` undefined, and callers take their portable path.
 */
export interface PostgresCapabilities {
  /** Blocks appends to `streamId` until the transaction of `client` ends; a stream with no row yet is not held. */
  holdStream(client: ClientBase, streamId: string): Promise<void>;
  /**
   * The stream's snapshot of `schemaVersion` (the `snapshots` table) and the events from its revision
   * on, in ONE round trip and two index lookups: what loading a stream that is not in memory costs.
   */
  readStreamFromSnapshot(streamId: string, schemaVersion: number, maxCount: number): Promise<StreamFromSnapshot>;
}
