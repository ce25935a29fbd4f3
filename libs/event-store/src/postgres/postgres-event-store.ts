import type { ClientBase, Pool, QueryConfig } from 'pg';
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
import { comparePositions, START, type Position } from '../position.js';
import { APPEND_CHANNEL, AppendWakeups } from './append-wakeups.js';
import type { AppendTransactionHook } from './append-transaction-hook.js';
import { eventTableReads, VISIBLE } from './event-table-reads.js';
import type { PostgresCapabilities, StreamFromSnapshot } from './postgres-capabilities.js';
import { appendPool, DEFAULT_GROUP_COMMIT_OPTIONS, GroupCommit, isUniqueViolation, type AppendRow, type GroupCommitOptions, type GroupCommitStats } from './group-commit.js';

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
  /**
   * Longest a read of one stream may wait for the server's answer (`query_timeout`): a stream's
   * state, an earlier attempt, an event by id. Commands read these holding their stream's lock, so a
   * connection that stops answering (a frozen server, a network that drops packets) must fail the
   * read, as it fails an append, not hold every later command on the stream until TCP gives up
   * (about 15 minutes). Default: twice the append deadline. The wake-up NOTIFY after appends is
   * bounded by it too (a stuck one would stop every later wake-up); `$all` reads (projections,
   * rebuilds) are not.
   */
  readonly streamReadTimeoutMs?: number;
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


/** The first re-read while events are held back by the visibility rule; later ones double up to HELD_BACK_RETRY_MAX_MS (see nextHeldBackRetry). */
const HELD_BACK_RETRY_FIRST_MS = 10;
const HELD_BACK_RETRY_MAX_MS = 1_000;

// Careful: `transaction_id` is selected as text, and a bare ORDER BY name binds to the output column
// first, which would sort xids as strings ('1000' < '999'). Every ORDER BY below qualifies `events.`.
const EVENT_COLUMNS =
  'global_position, transaction_id::text AS transaction_id, stream_id, stream_revision, event_id, event_type, data, metadata, created_at';

/** The last event of `$all` committed, visible or not: one backward step of `events_all_order`. */
const TAIL_OF_ALL = 'FROM events ORDER BY events.transaction_id DESC, events.global_position DESC LIMIT 1';

/** The lock a stream's holder takes; the append functions try it shared (migration 138). */
const STREAM_HOLD_LOCK = "SELECT pg_advisory_xact_lock(hashtext('token-ledger stream hold'), hashtext($1))";

type TailColumns = { tail_commit: string; tail_prepare: string };

/** The default event store: one PostgreSQL database; appends arriving together share a transaction (GroupCommit). */
export class PostgresEventStore implements EventStore {
  private readonly wakeups: AppendWakeups;
  private readonly pollIntervalMs: number;
  private readonly subscriptionBatchSize: number;
  private readonly groupCommit: GroupCommit;
  private readonly appends: Pool;
  private readonly streamReadTimeoutMs: number;
  readonly postgres: PostgresCapabilities;

  constructor(
    private readonly pool: Pool,
    options: PostgresEventStoreOptions,
  ) {
    this.postgres = {
      holdStream: async (client: ClientBase, streamId: string) => {
        // First the hold lock, which GroupCommit's appends try without waiting (migrations 138 and
        // 139): once it is had, the appends that took it before have committed, and the stream's
        // later appends are answered busy, sent again by GroupCommit, rather than wait here with
        // their whole batch.
        await client.query(STREAM_HOLD_LOCK, [streamId]);
        // Appends move the stream's row (UPDATE), which also waits for this share lock.
        await client.query('SELECT 1 FROM event_streams WHERE stream_id = $1 FOR SHARE', [streamId]);
      },
      readStreamFromSnapshot: (streamId, schemaVersion, maxCount) => this.readStreamFromSnapshot(streamId, schemaVersion, maxCount),
      readEvent: async (streamId, eventId) => {
        const result = await this.pool.query<EventRow>(readWithin({
          // Stryker disable next-line StringLiteral: equivalent in behaviour; emptied, pg sends the statement unnamed and it is parsed and planned on every call (a cost, not a result).
          name: 'event_store_read_event',
          text: `SELECT ${EVENT_COLUMNS} FROM events WHERE event_id = $1 AND stream_id = $2`,
          values: [eventId, streamId],
        }, this.streamReadTimeoutMs));
        const row = result.rows[0];
        return row === undefined ? undefined : toRecordedEvent(row);
      },
      ...eventTableReads(pool),
    };
    this.pollIntervalMs = options.pollIntervalMs ?? 250;
    this.subscriptionBatchSize = options.subscriptionBatchSize ?? 1_000;
    const groupCommitOptions = { ...DEFAULT_GROUP_COMMIT_OPTIONS, ...options.groupCommit };
    this.streamReadTimeoutMs = options.streamReadTimeoutMs ?? 2 * groupCommitOptions.deadlineMs;
    this.appends = appendPool(options.connectionString, groupCommitOptions, (error) => options.onError?.(error));
    this.groupCommit = new GroupCommit(this.appends, groupCommitOptions, options.appendHook, options.onAppendBatch);
    this.wakeups = new AppendWakeups(options.connectionString, options.onError ?? (() => undefined), () => this.pool.query(readWithin({ text: 'SELECT pg_notify($1, $2)', values: [APPEND_CHANNEL, ''] }, this.streamReadTimeoutMs)));
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
        return { ...appendResultOf(row), written: true, ...(row.hooked === true ? { hooksCommitted: true } : {}) };
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
    const result = await this.pool.query<EventRow>(readWithin({
      text: `SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND stream_revision ${backwards ? '<=' : '>='} $2
       ORDER BY stream_revision ${backwards ? 'DESC' : 'ASC'} LIMIT $3`,
      values: [streamId, from.toString(), maxCount],
    }, this.streamReadTimeoutMs));
    return result.rows.map(toRecordedEvent);
  }

  private async readStreamFromSnapshot(streamId: string, schemaVersion: number, maxCount: number): Promise<StreamFromSnapshot> {
    // One row per event (one row of nulls for none); the snapshot's columns ride on every row, its state only on the first.
    const result = await this.pool.query<Partial<EventRow> & SnapshotColumns>(readWithin({
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
    }, this.streamReadTimeoutMs));
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
    // Events can commit and still be held back by the visibility rule (an older transaction anywhere
    // in the cluster still runs): their wake-up may come before a read that cannot show them yet, and
    // none comes when they become visible. Each read also says where `$all` ends, visible or not;
    // while that is past what it found, read again after a short wait (nextHeldBackRetry), whatever
    // woke it.
    let heldBackRetryMs = 0;
    while (!isAborted(signal)) {
      const generation = this.wakeups.generation;
      const { events, tail } = await this.readLive(position);
      for (const event of events) {
        if (isAborted(signal)) return;
        yield event;
        position = event.position;
      }
      const heldBack = tail !== undefined && comparePositions(tail, position) > 0;
      heldBackRetryMs = nextHeldBackRetry(heldBackRetryMs, { found: events.length > 0, heldBack, pollIntervalMs: this.pollIntervalMs });
      if (events.length < this.subscriptionBatchSize) await this.wakeups.waitAfter(generation, heldBackRetryMs > 0 ? heldBackRetryMs : this.pollIntervalMs, signal);
    }
  }

  /**
   * A subscription's page of `$all` after `after`, and the position of the last event committed,
   * visible or not (undefined: none). A page with events reads the tail in the same statement, one
   * backward step of the index (a join that kept an empty page's row would sort the page again);
   * an empty page reads it alone, later, which only makes it later: anything past `after` then is
   * either held back or visible since, and worth a read.
   */
  private async readLive(after: Position): Promise<{ readonly events: readonly RecordedEvent[]; readonly tail: Position | undefined }> {
    const result = await this.pool.query<EventRow & TailColumns>(
      `SELECT (SELECT transaction_id::text ${TAIL_OF_ALL}) AS tail_commit, (SELECT global_position ${TAIL_OF_ALL}) AS tail_prepare, ${EVENT_COLUMNS} FROM events
        WHERE (transaction_id, global_position) > ($1::text::xid8, $2::bigint) AND ${VISIBLE}
        ORDER BY events.transaction_id, events.global_position LIMIT $3`,
      [after.commit.toString(), after.prepare.toString(), this.subscriptionBatchSize],
    );
    const first = result.rows[0] ?? (await this.pool.query<TailColumns>(`SELECT transaction_id::text AS tail_commit, global_position AS tail_prepare ${TAIL_OF_ALL}`)).rows[0];
    const tail = first === undefined ? undefined : { commit: BigInt(first.tail_commit), prepare: BigInt(first.tail_prepare) };
    return { events: result.rows.map(toRecordedEvent), tail };
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
    this.groupCommit.close();
    await this.wakeups.close();
    if (!this.appends.ending) await this.appends.end();
  }
}

/**
 * The wait before a live subscription's next read, in ms, while events past its position are held
 * back by the visibility rule (0: none held back, wait for a wake-up or the poll). A hold-up's first
 * re-read comes after HELD_BACK_RETRY_FIRST_MS, each next one after twice the wait, up to
 * HELD_BACK_RETRY_MAX_MS or the poll interval, whichever is shorter: events held back for a while are
 * read at most a second after they become visible, however long the poll. A read that found events
 * starts again from the first wait: what it found had been held back or was new, and either way the
 * wait so far says nothing of how long the rest will be (without this, full pages read while catching
 * up doubled the wait a subscription then took at the head, up to the whole second).
 */
export function nextHeldBackRetry(previousMs: number, read: { readonly found: boolean; readonly heldBack: boolean; readonly pollIntervalMs: number }): number {
  if (!read.heldBack) return 0;
  return Math.min(previousMs === 0 || read.found ? HELD_BACK_RETRY_FIRST_MS : previousMs * 2, HELD_BACK_RETRY_MAX_MS, read.pollIntervalMs);
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

/**
 * `config` failing with `Query read timeout` once `timeoutMs` pass without the server's answer (pg
 * reads `query_timeout` per query, though its types declare it only for the connection); pg-pool
 * then drops that connection rather than reuse it.
 */
function readWithin(config: QueryConfig, timeoutMs: number): QueryConfig {
  return { ...config, query_timeout: timeoutMs } as QueryConfig;
}
