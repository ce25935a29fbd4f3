import type { Position } from './position.js';
import type { PostgresCapabilities } from './postgres/postgres-capabilities.js';

export type JsonValue = string | number | boolean | null | readonly JsonValue[] | { readonly [key: string]: JsonValue };
export type EventMetadata = { readonly [key: string]: JsonValue };

export type EventToAppend = {
  /** A UUID chosen by the writer; appending the same ids at the same place again is a no-op. */
  readonly id: string;
  readonly type: string;
  readonly data: JsonValue;
  readonly metadata?: EventMetadata;
};

export type RecordedEvent = {
  readonly id: string;
  readonly type: string;
  readonly data: JsonValue;
  readonly metadata: EventMetadata;
  readonly streamId: string;
  readonly revision: bigint;
  readonly position: Position;
  readonly createdAt: Date;
};

/**
 * 'any' skips the check; a bigint is the revision of the stream's last event (0 after one event).
 * On PostgreSQL, an 'any' or 'stream_exists' append that waited for its stream inside a group commit
 * may commit under an earlier transaction id than the append it waited for, so `$all` can show that
 * stream's revisions out of order: the ledger's writes use exact revisions and 'no_stream' only,
 * which re-check under the stream's lock and fail instead (the benches and tests use 'any').
 */
export type ExpectedRevision = 'any' | 'no_stream' | 'stream_exists' | bigint;

export type AppendResult = {
  /** Revision of the last event in the stream after the append. */
  readonly nextRevision: bigint;
  /** Position of the last appended event in `$all`. */
  readonly position: Position;
  /**
   * Set when the events were written by this call and the adapter's append hook (PostgreSQL: the
   * inline projections) committed in the same transaction: the read models already show them.
   * Absent for an idempotent repeat, and from adapters without hooks.
   */
  readonly hooksCommitted?: true;
  /**
   * Set when the adapter knows this call wrote the events (PostgreSQL). Absent when it may have
   * found the same events already at that place and written nothing (an idempotent repeat), or
   * cannot tell (EventStoreDB answers both alike): a caller that must know reads them back.
   */
  readonly written?: true;
};

export type ReadStreamOptions = {
  /** Inclusive; defaults to the start (forwards) or the end (backwards). */
  readonly fromRevision?: bigint;
  readonly direction?: 'forwards' | 'backwards';
  readonly maxCount?: number;
};

export type ReadAllOptions = {
  /** Exclusive: events strictly after this position. Defaults to the start of `$all`. */
  readonly after?: Position;
  readonly maxCount?: number;
};

export type SubscribeToAllOptions = {
  readonly after?: Position;
  /** Ends the subscription: the iterator returns once the signal aborts. */
  readonly signal?: AbortSignal;
};

export type StreamMetadata = { readonly [key: string]: JsonValue };

/** The event store port. Adapters: PostgreSQL (default) and EventStoreDB. */
export interface EventStore {
  append(streamId: string, events: readonly EventToAppend[], options: { readonly expectedRevision: ExpectedRevision }): Promise<AppendResult>;
  /** A missing stream reads as no events. */
  readStream(streamId: string, options?: ReadStreamOptions): Promise<readonly RecordedEvent[]>;
  readAll(options?: ReadAllOptions): Promise<readonly RecordedEvent[]>;
  /** Catch-up from `after`, then live; never skips, never repeats. */
  subscribeToAll(options?: SubscribeToAllOptions): AsyncIterable<RecordedEvent>;
  /** The position of the newest event in `$all` a reader can see, or undefined when it is empty. */
  headPosition(): Promise<Position | undefined>;
  getStreamMetadata(streamId: string): Promise<StreamMetadata>;
  setStreamMetadata(streamId: string, metadata: StreamMetadata): Promise<void>;
  close(): Promise<void>;
  /** Present when the events live in PostgreSQL, beside the read models. */
  readonly postgres?: PostgresCapabilities;
}

export const EVENT_STORE = Symbol('EVENT_STORE');

export const READ_COUNT_MAX = 10_000;
export const APPEND_COUNT_MAX = 10_000;

/** The stream's revision is not the expected one. */
export class WrongExpectedRevisionError extends Error {
  override readonly name = 'WrongExpectedRevisionError';

  constructor(
    readonly streamId: string,
    readonly expected: ExpectedRevision,
    /** -1n when the stream has no events. */
    readonly actual: bigint,
  ) {
    super(`stream ${streamId}: expected revision ${String(expected)}, actual ${actual}`);
  }
}

/**
 * The append did not finish within its deadline (a lock held elsewhere, its stream held by a
 * rebuild or a verification, a database that stopped answering). `applied` says what is known of
 * it: `no` when nothing of it was written (the database cancelled it at its statement timeout, or
 * it was answered busy until the deadline), `unknown` when a try of it may have committed (a
 * connection that stopped answering or was lost), in which case a retry must be idempotent (the
 * same event ids) to be safe. Retryable either way; the cause says which.
 */
export class AppendDeadlineExceededError extends Error {
  override readonly name = 'AppendDeadlineExceededError';
  readonly code = 'APPEND_DEADLINE_EXCEEDED';

  constructor(
    readonly streamId: string,
    readonly deadlineMs: number,
    readonly applied: 'no' | 'unknown',
    options?: ErrorOptions,
  ) {
    super(`stream ${streamId}: the append did not finish within ${deadlineMs} ms (${applied === 'no' ? 'not applied' : 'outcome unknown: a try may have committed'})`, options);
  }
}

/** Some of the event ids were already appended, but not as this batch at this place. */
export class EventIdConflictError extends Error {
  override readonly name = 'EventIdConflictError';

  constructor(readonly streamId: string) {
    super(`stream ${streamId}: some event ids were already appended elsewhere`);
  }
}
