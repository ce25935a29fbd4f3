import { DatabaseError, type ClientBase, type Pool } from 'pg';
import {
  EventIdConflictError,
  WrongExpectedRevisionError,
  type AppendResult,
  type EventMetadata,
  type EventStore,
  type EventToAppend,
  type ExpectedRevision,
  type JsonValue,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type StreamMetadata,
  type SubscribeToAllOptions,
} from '../event-store.port.js';
import { checkAppendCount, checkedReadCount } from '../limits.js';
import { START, type Position } from '../position.js';
import { APPEND_CHANNEL, AppendWakeups } from './append-wakeups.js';
import type { AppendTransactionHook } from './append-transaction-hook.js';
import { eventTableReads, VISIBLE } from './event-table-reads.js';
import type { PostgresCapabilities, StreamFromSnapshot } from './postgres-capabilities.js';
import { appendPool, DEFAULT_GROUP_COMMIT_OPTIONS, GroupCommit, type AppendRow, type GroupCommitOptions, type GroupCommitStats } from './group-commit.js';

export type PostgresEventStoreOptions = {
  /** Used for the dedicated LISTEN connection and the append connections (see `appendPool`); other queries go through the pool. */
  readonly connectionString: string;
  /** Longest a live subscription waits without a notification before it reads again. */
  readonly pollIntervalMs?: number;
  /** Events a subscription reads per query. */
  readonly subscriptionBatchSize?: number;
  readonly onError?: (error: Error) => void;
  /** How appends that arrive together share a transaction; see GroupCommit. */
  readonly groupCommit?: Partial<GroupCommitOptions>;
  /** Work that commits in every append's transaction (the projection engine's inline projections). */
  readonly appendHook?: AppendTransactionHook;
  /** Told the number of appends of every group-commit batch as it is sent (metrics). */
  readonly onAppendBatch?: (appends: number) => void;
};

type SnapshotColumns = { snapshot_revision: string | null; snapshot_event_id: string | null; snapshot_checksum: string | null; snapshot_state: string | null };

type EventRow = {
  global_position: string;
  transaction_id: string;
  stream_id: string;
  stream_revision: string;
  event_id: string;
  event_type: string;
  data: JsonValue;
  metadata: EventMetadata;
  created_at: Date;
};


/** The first re-read after a wake that found nothing visible; later ones double up to HELD_BACK_RETRY_MAX_MS (see nextHeldBackRetry). */
const HELD_BACK_RETRY_FIRST_MS = 10;
const HELD_BACK_RETRY_MAX_MS = 1_000;

// Careful: `transaction_id` is selected as text, and a bare ORDER BY name binds to the output column
// first, which would sort xids as strings ('1000' < '999'). Every ORDER BY below qualifies `events.`.
const EVENT_COLUMNS =
  'global_position, transaction_id::text AS transaction_id, stream_id, stream_revision, event_id, event_type, data, metadata, created_at';

/** The default event store: one PostgreSQL database; appends arriving together share a transaction (GroupCommit). */
export class PostgresEventStore implements EventStore {
  private readonly wakeups: AppendWakeups;
  private readonly pollIntervalMs: number;
  private readonly subscriptionBatchSize: number;
  private readonly groupCommit: GroupCommit;
  private readonly appends: Pool;
  readonly postgres: PostgresCapabilities;

  constructor(
    private readonly pool: Pool,
    options: PostgresEventStoreOptions,
  ) {
    this.postgres = {
      holdStream: async (client: ClientBase, streamId: string) => {
        // Appends move the stream's row (UPDATE), which waits for this share lock.
        await client.query('SELECT 1 FROM event_streams WHERE stream_id = $1 FOR SHARE', [streamId]);
      },
      readStreamFromSnapshot: (streamId, schemaVersion, maxCount) => this.readStreamFromSnapshot(streamId, schemaVersion, maxCount),
      ...eventTableReads(pool),
    };
    this.pollIntervalMs = options.pollIntervalMs ?? 250;
    this.subscriptionBatchSize = options.subscriptionBatchSize ?? 1_000;
    const groupCommitOptions = { ...DEFAULT_GROUP_COMMIT_OPTIONS, ...options.groupCommit };
    this.appends = appendPool(options.connectionString, groupCommitOptions, (error) => options.onError?.(error));
    this.groupCommit = new GroupCommit(this.appends, groupCommitOptions, options.appendHook, options.onAppendBatch);
    this.wakeups = new AppendWakeups(options.connectionString, options.onError ?? (() => undefined), () => this.pool.query('SELECT pg_notify($1, $2)', [APPEND_CHANNEL, '']));
  }

  async append(streamId: string, events: readonly EventToAppend[], { expectedRevision }: { readonly expectedRevision: ExpectedRevision }): Promise<AppendResult> {
    checkAppendCount(events.length);
    const [kind, revision] = typeof expectedRevision === 'bigint' ? ['exact', expectedRevision.toString()] : [expectedRevision, null];
    let row: AppendRow;
    try {
      row = await this.groupCommit.append({ streamId, kind, revision, events });
    } catch (error) {
      // An id being written by another transaction at the same moment: its insert won, this one lost.
      if (isUniqueViolation(error, 'events_event_id_unique')) throw new EventIdConflictError(streamId);
      throw error;
    }
    switch (row.status) {
      case 'appended':
        this.wakeups.published();
        return { ...appendResultOf(row), ...(row.hooked === true ? { hooksCommitted: true } : {}) };
      case 'already_appended':
        // Possibly this process's own append, found again after its connection was lost: wake the
        // subscribers as for any append (the wake-up is coalesced and cheap).
        this.wakeups.published();
        return appendResultOf(row);
      case 'wrong_expected':
        throw new WrongExpectedRevisionError(streamId, expectedRevision, BigInt(row.actual_revision));
      case 'id_conflict':
        throw new EventIdConflictError(streamId);
      default: {
        const unknown: never = row.status;
        throw new Error(`append_to_stream returned the unknown status ${String(unknown)}`);
      }
    }
  }

  /** How appends have been grouped into transactions by this store so far. */
  groupCommitStats(): GroupCommitStats {
    return this.groupCommit.stats();
  }

  async readStream(streamId: string, options: ReadStreamOptions = {}): Promise<readonly RecordedEvent[]> {
    const maxCount = checkedReadCount(options.maxCount);
    const backwards = options.direction === 'backwards';
    const from = options.fromRevision ?? (backwards ? 2n ** 63n - 1n : 0n);
    const result = await this.pool.query<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND stream_revision ${backwards ? '<=' : '>='} $2
       ORDER BY stream_revision ${backwards ? 'DESC' : 'ASC'} LIMIT $3`,
      [streamId, from.toString(), maxCount],
    );
    return result.rows.map(toRecordedEvent);
  }

  private async readStreamFromSnapshot(streamId: string, schemaVersion: number, maxCount: number): Promise<StreamFromSnapshot> {
    // One row per event (one row of nulls for none); the snapshot's columns ride on every row, its state only on the first.
    const result = await this.pool.query<Partial<EventRow> & SnapshotColumns>({
      // Stryker disable next-line StringLiteral: equivalent in behaviour; emptied, pg sends the statement unnamed and it is parsed and planned on every call (a cost, not a result).
      name: 'event_store_read_from_snapshot',
      text: `SELECT snapshot.revision::text AS snapshot_revision, snapshot.last_event_id::text AS snapshot_event_id, snapshot.checksum AS snapshot_checksum,
                    CASE WHEN stream.stream_revision IS NULL OR stream.stream_revision = snapshot.revision THEN snapshot.state END AS snapshot_state, stream.*
               FROM (SELECT 1) AS one
               LEFT JOIN snapshots AS snapshot ON snapshot.stream_id = $1 AND snapshot.schema_version = $2
               LEFT JOIN LATERAL (SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND stream_revision >= coalesce(snapshot.revision, 0)
                                   ORDER BY stream_revision LIMIT $3) AS stream ON true
              ORDER BY stream.stream_revision`,
      values: [streamId, schemaVersion, checkedReadCount(maxCount)],
    });
    const first = result.rows[0];
    const snapshot =
      first?.snapshot_revision === null || first?.snapshot_revision === undefined
        ? undefined
        : { revision: BigInt(first.snapshot_revision), lastEventId: first.snapshot_event_id ?? '', state: first.snapshot_state ?? '', checksum: first.snapshot_checksum ?? '' };
    const events = result.rows.filter((row): row is EventRow & SnapshotColumns => row.event_id !== null && row.event_id !== undefined).map(toRecordedEvent);
    return { snapshot, events };
  }

  async readAll(options: ReadAllOptions = {}): Promise<readonly RecordedEvent[]> {
    const after = options.after ?? START;
    const result = await this.pool.query<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM events
        WHERE (transaction_id, global_position) > ($1::text::xid8, $2::bigint) AND ${VISIBLE}
        ORDER BY events.transaction_id, events.global_position LIMIT $3`,
      [after.commit.toString(), after.prepare.toString(), checkedReadCount(options.maxCount)],
    );
    return result.rows.map(toRecordedEvent);
  }

  async *subscribeToAll(options: SubscribeToAllOptions = {}): AsyncGenerator<RecordedEvent> {
    let position = options.after ?? START;
    const { signal } = options;
    // A commit's wake whose read finds nothing may mean events committed but held back by the visibility rule
    // (an older transaction anywhere in the cluster still runs): nothing will wake us again for them,
    // so read again after a short wait (nextHeldBackRetry), until a read finds events or the poll takes over.
    // So may the first read, if events committed before the subscription began are held back: their
    // wake-up was not ours to hear (heldBackAfter tells).
    let previousCommitWakes: number | undefined;
    let heldBackRetry = NO_HELD_BACK_RETRY;
    while (!isAborted(signal)) {
      const generation = this.wakeups.generation;
      const commitWakes = this.wakeups.commitWakes;
      const batch = await this.readAll({ after: position, maxCount: this.subscriptionBatchSize });
      for (const event of batch) {
        if (isAborted(signal)) return;
        yield event;
        position = event.position;
      }
      const woken = previousCommitWakes === undefined ? batch.length === 0 && (await this.heldBackAfter(position)) : commitWakes !== previousCommitWakes;
      heldBackRetry = nextHeldBackRetry(heldBackRetry, { found: batch.length > 0, woken, pollIntervalMs: this.pollIntervalMs });
      previousCommitWakes = commitWakes;
      if (batch.length < this.subscriptionBatchSize) await this.wakeups.waitAfter(generation, heldBackRetry.waitMs > 0 ? heldBackRetry.waitMs : this.pollIntervalMs, signal);
    }
  }

  /** Whether events after `after` have committed but are held back by the visibility rule (an older transaction still runs). */
  private async heldBackAfter(after: Position): Promise<boolean> {
    const result = await this.pool.query<{ held: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM events WHERE (transaction_id, global_position) > ($1::text::xid8, $2::bigint) AND NOT (${VISIBLE})) AS held`,
      [after.commit.toString(), after.prepare.toString()],
    );
    return result.rows[0]?.held === true;
  }

  async headPosition(): Promise<Position | undefined> {
    const result = await this.pool.query<{ transaction_id: string; global_position: string }>(
      `SELECT transaction_id::text AS transaction_id, global_position FROM events WHERE ${VISIBLE}
        ORDER BY events.transaction_id DESC, events.global_position DESC LIMIT 1`,
    );
    const row = result.rows[0];
    return row === undefined ? undefined : { commit: BigInt(row.transaction_id), prepare: BigInt(row.global_position) };
  }

  async getStreamMetadata(streamId: string): Promise<StreamMetadata> {
    const result = await this.pool.query<{ metadata: StreamMetadata }>('SELECT metadata FROM event_streams WHERE stream_id = $1', [streamId]);
    return result.rows[0]?.metadata ?? {};
  }

  async setStreamMetadata(streamId: string, metadata: StreamMetadata): Promise<void> {
    await this.pool.query(
      `INSERT INTO event_streams (stream_id, metadata) VALUES ($1, $2::jsonb)
       ON CONFLICT (stream_id) DO UPDATE SET metadata = excluded.metadata, updated_at = now()`,
      [streamId, JSON.stringify(metadata)],
    );
  }

  async close(): Promise<void> {
    await this.wakeups.close();
    if (!this.appends.ending) await this.appends.end();
  }
}

/** Where a live subscription's re-reads for held-back events stand: the next wait (0: none, wait for a wake-up or the poll) and the waits so far. */
export type HeldBackRetry = { readonly waitMs: number; readonly waitedMs: number };

export const NO_HELD_BACK_RETRY: HeldBackRetry = Object.freeze({ waitMs: 0, waitedMs: 0 });

/**
 * The next re-read of a live subscription for events held back by the visibility rule. A read that
 * finds events ends the retries; a commit's wake whose read finds nothing starts them at
 * HELD_BACK_RETRY_FIRST_MS; each further empty read doubles the wait, up to HELD_BACK_RETRY_MAX_MS.
 * The retries stop (the poll takes over) once the next wait would reach the poll interval, or the
 * waits so far add up to it. So events held back for H seconds are read at most
 * HELD_BACK_RETRY_MAX_MS after they become visible, while H is under the poll interval: with a long
 * poll, doubling without the cap made that up to H again (a 10 s hold-up read 20 s late).
 */
export function nextHeldBackRetry(current: HeldBackRetry, read: { readonly found: boolean; readonly woken: boolean; readonly pollIntervalMs: number }): HeldBackRetry {
  if (read.found) return NO_HELD_BACK_RETRY;
  if (read.woken) return { waitMs: HELD_BACK_RETRY_FIRST_MS, waitedMs: 0 };
  if (current.waitMs === 0) return NO_HELD_BACK_RETRY;
  const waitedMs = current.waitedMs + current.waitMs;
  const waitMs = Math.min(current.waitMs * 2, HELD_BACK_RETRY_MAX_MS);
  return waitMs >= read.pollIntervalMs || waitedMs >= read.pollIntervalMs ? NO_HELD_BACK_RETRY : { waitMs, waitedMs };
}

function isUniqueViolation(error: unknown, constraint: string): boolean {
  return error instanceof DatabaseError && error.code === '23505' && error.constraint === constraint;
}

function appendResultOf(row: AppendRow): AppendResult {
  return { nextRevision: BigInt(row.next_revision ?? ''), position: { commit: BigInt(row.commit_position ?? ''), prepare: BigInt(row.prepare_position ?? '') } };
}

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

function toRecordedEvent(row: EventRow): RecordedEvent {
  return {
    id: row.event_id,
    type: row.event_type,
    data: row.data,
    metadata: row.metadata,
    streamId: row.stream_id,
    revision: BigInt(row.stream_revision),
    position: { commit: BigInt(row.transaction_id), prepare: BigInt(row.global_position) },
    createdAt: row.created_at,
  };
}
