import { createHash } from 'node:crypto';
import type { Pool } from 'pg';

export type StoredSnapshot = {
  readonly streamId: string;
  readonly schemaVersion: number;
  /** Revision of the last event the state includes. */
  readonly revision: bigint;
  /** Id of that event, so a loader can tell the snapshot still belongs to this stream's history. */
  readonly lastEventId: string;
  /** The encoded state as JSON text. */
  readonly state: string;
};

type SnapshotRow = { schema_version: number; revision: string; last_event_id: string; state: string; checksum: string };

/** Snapshots in PostgreSQL, one row per stream: the latest wins. */
export class PostgresSnapshotStore {
  constructor(private readonly pool: Pool) {}

  /** The stream's snapshot of this schema version, or undefined; a checksum mismatch reads as none. */
  async load(streamId: string, schemaVersion: number): Promise<StoredSnapshot | 'corrupt' | undefined> {
    const result = await this.pool.query<SnapshotRow>(
      'SELECT schema_version, revision::text, last_event_id, state, checksum FROM snapshots WHERE stream_id = $1 AND schema_version = $2',
      [streamId, schemaVersion],
    );
    const row = result.rows[0];
    if (row === undefined) return undefined;
    if (snapshotChecksum(row.state) !== row.checksum) return 'corrupt';
    return { streamId, schemaVersion: row.schema_version, revision: BigInt(row.revision), lastEventId: row.last_event_id, state: row.state };
  }

  /** Keeps the newer snapshot when two writers race; a new schema version always replaces an old one. */
  async save(snapshot: StoredSnapshot): Promise<void> {
    await this.pool.query(
      `INSERT INTO snapshots (stream_id, schema_version, revision, last_event_id, state, checksum) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (stream_id) DO UPDATE SET schema_version = excluded.schema_version, revision = excluded.revision,
         last_event_id = excluded.last_event_id, state = excluded.state, checksum = excluded.checksum, created_at = now()
       WHERE snapshots.revision <= excluded.revision OR snapshots.schema_version <> excluded.schema_version`,
      [snapshot.streamId, snapshot.schemaVersion, snapshot.revision.toString(), snapshot.lastEventId, snapshot.state, snapshotChecksum(snapshot.state)],
    );
  }
}

/** SHA-256 of the state text: a damaged row is refused rather than decoded. */
export function snapshotChecksum(state: string): string {
  return createHash('sha256').update(state).digest('base64url');
}
