import type { ClientBase } from 'pg';
import type { RecordedEvent } from '../event-store.port.js';
import type { Position } from '../position.js';

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

/** A stretch of `$all`: the events after `after` (exclusive) up to `upTo` (inclusive). */
export type PositionRange = { readonly after: Position; readonly upTo: Position };

/** The `events.global_position` values of a bulk load's chunk, both inclusive. */
export type GlobalPositionChunk = { readonly first: bigint; readonly last: bigint };

/** The events up to a position: their count and the span of their global positions (for chunking a bulk load). */
export type GlobalPositionSpan = GlobalPositionChunk & { readonly count: number };

/** Where to read one event: a stream and a revision. */
export type EventAddress = { readonly streamId: string; readonly revision: bigint };

/**
 * What the PostgreSQL adapter offers beyond the port, to code whose tables share its database (the
 * projection engine, verification, audit). An adapter without it (EventStoreDB) leaves
 * `EventStore.postgres` undefined, and callers take their portable path. Only the adapter names the
 * event tables: every read of them by other code is a method here (a spec scans for offenders),
 * except the set-based projection SQL, which runs inside PostgreSQL by design.
 */
export interface PostgresCapabilities {
  /**
   * Holds appends to `streamId` off until the transaction of `client` ends, after waiting for those
   * in flight to commit. The appends of GroupCommit's connections (which ask for busy answers,
   * migration 139) do not wait in the database: each is answered busy and sent again by its process
   * until its append deadline, so the hold delays no other stream's. A session that did not ask
   * waits on the stream's row, as before; a stream with no row yet is not held against it.
   */
  holdStream(client: ClientBase, streamId: string): Promise<void>;
  /**
   * The stream's snapshot of `schemaVersion` (the `snapshots` table) and the events from its revision
   * on, in ONE round trip and two index lookups: what loading a stream that is not in memory costs.
   */
  readStreamFromSnapshot(streamId: string, schemaVersion: number, maxCount: number): Promise<StreamFromSnapshot>;
  /** The event `eventId` when `streamId` holds it: one lookup of the unique index on event ids. */
  readEvent(streamId: string, eventId: string): Promise<RecordedEvent | undefined>;
  /** The number of events `$all` readers can see after `after`: a reader's lag at that position. */
  countEventsAfter(after: Position): Promise<number>;
  /** The number of events in the range (every one committed: `upTo` was read as the head or before it). */
  countEventsBetween(range: PositionRange): Promise<number>;
  /** The events up to `upTo`: how many, and their first and last global positions; undefined for none. */
  globalPositionSpan(upTo: Position): Promise<GlobalPositionSpan | undefined>;
  /** The number of events up to `upTo` whose global position is in `chunk`. */
  countEventsInChunk(upTo: Position, chunk: GlobalPositionChunk): Promise<number>;
  /** The position of the `count`-th event of the range, or `range.upTo` when it holds fewer. */
  positionAfterEvents(range: PositionRange, count: number): Promise<Position>;
  /** One event of each type in the range that is not one of `types`, to ask a projection whether it handles that type. */
  eventsOfOtherTypes(range: PositionRange, types: readonly string[]): Promise<readonly EventAddress[]>;
  /**
   * The revision the store records as the stream's last (-1n before its first event), kept apart
   * from the events themselves, so removed newest events show; undefined for a stream never written.
   */
  recordedStreamRevision(streamId: string): Promise<bigint | undefined>;
  /** The ids of every stream whose id starts with `prefix`. */
  streamIdsStartingWith(prefix: string): Promise<readonly string[]>;
}
