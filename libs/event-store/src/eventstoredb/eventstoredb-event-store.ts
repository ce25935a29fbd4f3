import {
  BACKWARDS,
  END,
  EventStoreDBClient,
  FORWARDS,
  NO_STREAM,
  START,
  excludeSystemEvents,
  jsonEvent,
  type ReadPosition,
  type RecordedEvent as ClientRecordedEvent,
} from '@eventstore/db-client';
import { DatabaseUnavailableError } from '@app/database';
import {
  AppendDeadlineExceededError,
  type AppendResult,
  type EventStore,
  type EventToAppend,
  type ExpectedRevision,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type StreamMetadata,
  type SubscribeToAllOptions,
} from '../event-store.port.js';
import { checkAppendCount, checkedReadCount } from '../limits.js';
import { comparePositions, START as START_POSITION, type Position } from '../position.js';
import {
  appendConflictError,
  appendOutcomeOf,
  appendOutcomeOfRejection,
  customMetadataOf,
  expectedPlaceOf,
  fromClientPosition,
  isStreamNotFound,
  isUserEvent,
  metadataStreamOf,
  metadataToWrite,
  toClientExpectedRevision,
  toClientPosition,
  toEventData,
  toRecordedEvent,
  transportFailureOf,
  type ClientResolvedEvent,
} from './eventstoredb-mapping.js';

/** Events read per request while looking back from the end of `$all` for the newest non-system event. */
const HEAD_SEARCH_PAGE_SIZE = 100;
/** Writes of stream metadata retried when another writer changed it between our read and our write. */
const METADATA_WRITE_ATTEMPTS_MAX = 3;

/**
 * The event store on EventStoreDB / KurrentDB (server 22.6 or later) through @eventstore/db-client.
 * Where EventStoreDB behaves differently from the PostgreSQL adapter (event id idempotency, `$all`
 * positions), see infra/eventstoredb/README.md.
 */
export class EventStoreDBEventStore implements EventStore {
  /** `deadlineMs`: the deadline the client sends with a call (its `defaultDeadline`), named when an append's outcome is unknown. */
  constructor(
    private readonly client: EventStoreDBClient,
    private readonly deadlineMs: number = CLIENT_DEFAULT_DEADLINE_MS,
  ) {}

  /** `esdb://host:2113?tls=false`, or several hosts for a cluster; the client connects on first use. */
  static connect(connectionString: string): EventStoreDBEventStore {
    return new EventStoreDBEventStore(EventStoreDBClient.connectionString(connectionString), deadlineOf(connectionString));
  }

  /**
   * A failure of the connection is answered as PostgreSQL's: DatabaseUnavailableError when nothing
   * reached a server (no connection, discovery gave up, not the leader), AppendDeadlineExceededError
   * with `applied: 'unknown'` (ADR 0018) when it may have been written (a lost connection, the
   * deadline the server enforces, and an append written whose read-back failed).
   */
  async append(streamId: string, events: readonly EventToAppend[], { expectedRevision }: { readonly expectedRevision: ExpectedRevision }): Promise<AppendResult> {
    checkAppendCount(events.length);
    let sent = false;
    try {
      const outcome = await this.client
        .appendToStream(streamId, events.map(toEventData), { expectedRevision: toClientExpectedRevision(expectedRevision) })
        .then(appendOutcomeOf, appendOutcomeOfRejection);
      sent = true;
      if (!outcome.written) throw await this.conflictError(streamId, events, expectedRevision, outcome.actualRevision);
      // The server's reply carries a commit position, not always the last event's position in $all (and none
      // at all for an idempotent retry on older servers): the event itself says where it is.
      return { nextRevision: outcome.nextRevision, position: await this.positionAt(streamId, outcome.nextRevision) };
    } catch (error) {
      const failure = error instanceof DatabaseUnavailableError ? { sent: true } : transportFailureOf(error);
      if (failure === undefined) throw error;
      if (!sent && !failure.sent) throw new DatabaseUnavailableError({ cause: error });
      throw new AppendDeadlineExceededError(streamId, this.deadlineMs, 'unknown', { cause: error });
    }
  }

  async readStream(streamId: string, options: ReadStreamOptions = {}): Promise<readonly RecordedEvent[]> {
    const backwards = options.direction === 'backwards';
    const resolved = await readOrEmpty(
      this.client.readStream(streamId, {
        direction: backwards ? BACKWARDS : FORWARDS,
        fromRevision: options.fromRevision ?? (backwards ? END : START),
        maxCount: checkedReadCount(options.maxCount),
      }),
    );
    return resolved.map(toRecordedEvent);
  }

  async readAll(options: ReadAllOptions = {}): Promise<readonly RecordedEvent[]> {
    const maxCount = checkedReadCount(options.maxCount);
    const events: RecordedEvent[] = [];
    let cursor = options.after ?? START_POSITION;
    while (events.length < maxCount) {
      // The read includes the event at the cursor (the port's `after` excludes it), hence one more than needed.
      const requested = maxCount - events.length + 1;
      const page = await readOrEmpty(this.client.readAll({ fromPosition: toClientPosition(cursor), maxCount: requested }));
      for (const resolved of page) {
        const position = fromClientPosition(resolved.event?.position, resolved.event?.id ?? 'unknown');
        if (comparePositions(position, cursor) <= 0) continue;
        cursor = position;
        if (isUserEvent(resolved) && events.length < maxCount) events.push(toRecordedEvent(resolved));
      }
      if (page.length < requested) break;
    }
    return events;
  }

  async *subscribeToAll(options: SubscribeToAllOptions = {}): AsyncGenerator<RecordedEvent> {
    const { signal } = options;
    if (isAborted(signal)) return;
    const after = options.after ?? START_POSITION;
    const subscription = this.client.subscribeToAll({ fromPosition: toClientPosition(after), filter: excludeSystemEvents() });
    // Its promise rejects when the client never found a server (discovery failed): nobody awaits it, so its failure is dropped here (the iteration reports it).
    const stop = () => void subscription.unsubscribe().catch(() => undefined);
    signal?.addEventListener('abort', stop, { once: true });
    try {
      for await (const resolved of subscription) {
        if (isAborted(signal)) return;
        if (!isUserEvent(resolved)) continue;
        const recorded = toRecordedEvent(resolved);
        // Skipping what is not after `after` keeps the port's exclusive start whichever way the server counts it.
        if (comparePositions(recorded.position, after) > 0) yield recorded;
      }
    } finally {
      signal?.removeEventListener('abort', stop);
      // Nobody listens to the stream any more: an error it reports while closing must not crash the process.
      subscription.on('error', () => undefined);
      await subscription.unsubscribe();
    }
  }

  async headPosition(): Promise<Position | undefined> {
    let cursor: ReadPosition = END;
    for (;;) {
      const page = await readOrEmpty(this.client.readAll({ direction: BACKWARDS, fromPosition: cursor, maxCount: HEAD_SEARCH_PAGE_SIZE }));
      const newest = page.find(isUserEvent)?.event;
      if (newest !== undefined) return fromClientPosition(newest.position, newest.id);
      const oldest = page[page.length - 1]?.event;
      if (page.length < HEAD_SEARCH_PAGE_SIZE || oldest === undefined) return undefined;
      cursor = fromClientPosition(oldest.position, oldest.id);
    }
  }

  async getStreamMetadata(streamId: string): Promise<StreamMetadata> {
    return customMetadataOf((await this.latestMetadataEvent(streamId))?.data);
  }

  async setStreamMetadata(streamId: string, metadata: StreamMetadata): Promise<void> {
    for (let attempt = 1; ; attempt += 1) {
      const current = await this.latestMetadataEvent(streamId);
      const event = jsonEvent({ type: '$metadata', data: metadataToWrite(current?.data, metadata) });
      const outcome = await this.client
        .appendToStream(metadataStreamOf(streamId), event, { expectedRevision: current?.revision ?? NO_STREAM })
        .then(appendOutcomeOf, appendOutcomeOfRejection);
      if (outcome.written) return;
      if (attempt === METADATA_WRITE_ATTEMPTS_MAX) throw new Error(`stream ${streamId}: its metadata kept changing while being written`);
    }
  }

  async close(): Promise<void> {
    await this.client.dispose();
  }

  /** A refused append, translated; reads the event at the expected place when only that tells a conflict from a partial repeat. */
  private async conflictError(streamId: string, events: readonly EventToAppend[], expected: ExpectedRevision, actualRevision: bigint): Promise<Error> {
    const place = expectedPlaceOf(expected);
    const idAtPlace = place !== undefined && actualRevision >= place ? (await this.eventAt(streamId, place))?.id : undefined;
    return appendConflictError(streamId, expected, actualRevision, idAtPlace, events[0]?.id ?? '');
  }

  private async positionAt(streamId: string, revision: bigint): Promise<Position> {
    const recorded = await this.eventAt(streamId, revision);
    if (recorded === undefined) throw new Error(`stream ${streamId}: the appended event at revision ${revision} could not be read back`);
    return fromClientPosition(recorded.position, recorded.id);
  }

  private async eventAt(streamId: string, revision: bigint): Promise<ClientRecordedEvent | undefined> {
    // On the leader, which acknowledged the append: a follower may not have the event yet.
    const [resolved] = await readOrEmpty(this.client.readStream(streamId, { fromRevision: revision, maxCount: 1, requiresLeader: true }));
    return resolved?.event?.revision === revision ? resolved.event : undefined;
  }

  private async latestMetadataEvent(streamId: string): Promise<{ readonly revision: bigint; readonly data: unknown } | undefined> {
    const [resolved] = await readOrEmpty(this.client.readStream(metadataStreamOf(streamId), { direction: BACKWARDS, fromRevision: END, maxCount: 1, requiresLeader: true }));
    const recorded = resolved?.event;
    return recorded === undefined ? undefined : { revision: recorded.revision, data: recorded.isJson ? recorded.data : undefined };
  }
}

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

/**
 * Everything a read returns; a stream that does not exist reads as empty. A failure of the
 * connection is DatabaseUnavailableError, as PostgreSQL's is (503 with Retry-After, and no finding
 * of an audit): the service's one event store is its database.
 */
async function readOrEmpty<Resolved extends ClientResolvedEvent>(read: AsyncIterable<Resolved>): Promise<Resolved[]> {
  const items: Resolved[] = [];
  try {
    for await (const item of read) items.push(item);
  } catch (error) {
    if (isStreamNotFound(error)) return [];
    if (transportFailureOf(error) !== undefined) throw new DatabaseUnavailableError({ cause: error });
    throw error;
  }
  return items;
}

/** The client's default deadline of a call, when the connection string sets none. */
const CLIENT_DEFAULT_DEADLINE_MS = 10_000;

/** The connection string's `defaultDeadline` (milliseconds; its keys are case-insensitive), or the client's default. */
function deadlineOf(connectionString: string): number {
  const setting = /[?&]defaultDeadline=([0-9]+)(?:&|$)/i.exec(connectionString)?.[1];
  return setting === undefined ? CLIENT_DEFAULT_DEADLINE_MS : Number(setting);
}
