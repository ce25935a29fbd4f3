/**
 * Pure translations between the EventStore port and @eventstore/db-client (v6): expected revisions,
 * positions, recorded events, append outcomes and conflicts, stream metadata. No I/O here, so every
 * rule is unit tested without a server (eventstoredb-mapping.spec.ts).
 */
import {
  ANY,
  DeadlineExceededError,
  NO_STREAM,
  NotLeaderError,
  START,
  STREAM_EXISTS,
  StreamNotFoundError,
  UnavailableError,
  WrongExpectedVersionError,
  type AppendExpectedRevision,
  type AppendResult as ClientAppendResult,
  type JSONEventData,
  type JSONType,
  type Position as ClientPosition,
  type ReadPosition,
  type RecordedEvent as ClientRecordedEvent,
} from '@eventstore/db-client';
import {
  EventIdConflictError,
  WrongExpectedRevisionError,
  type EventMetadata,
  type EventToAppend,
  type ExpectedRevision,
  type JsonValue,
  type RecordedEvent,
  type StreamMetadata,
} from '../event-store.port.js';
import { comparePositions, START as START_POSITION, type Position } from '../position.js';

/** What the server sends for a position it does not know (Position.End: both parts are 2^64 - 1). */
const UNKNOWN_POSITION_PART = 2n ** 64n - 1n;

/** The shape shared by the client's stream, `$all` and subscription results. */
export type ClientResolvedEvent = { readonly event?: ClientRecordedEvent };

export function toClientExpectedRevision(expected: ExpectedRevision): AppendExpectedRevision {
  if (typeof expected === 'bigint') {
    if (expected < 0n) throw new RangeError(`an expected revision is 0 or more (use 'no_stream' for a new stream), not ${expected}`);
    return expected;
  }
  switch (expected) {
    case 'any':
      return ANY;
    case 'no_stream':
      return NO_STREAM;
    case 'stream_exists':
      return STREAM_EXISTS;
    default: {
      const unknown: never = expected;
      throw new Error(`unknown expected revision ${String(unknown)}`);
    }
  }
}

/** Where a read of `$all` starts. The client's reads include the event at this position; callers skip it. */
export function toClientPosition(position: Position): ReadPosition {
  return comparePositions(position, START_POSITION) === 0 ? START : { commit: position.commit, prepare: position.prepare };
}

/** The client's {commit, prepare} is already a pair of unsigned 64-bit bigints: copied as it is, so nothing is lost. */
export function fromClientPosition(position: ClientPosition | undefined, eventId: string): Position {
  if (position === undefined || position.commit === UNKNOWN_POSITION_PART) {
    // Stream reads carry positions from server 22.6 on, and only for events written without an explicit transaction.
    throw new Error(`event ${eventId} came without its $all position: EventStoreDB 22.6 or later is required`);
  }
  return { commit: position.commit, prepare: position.prepare };
}

/** Events of the server itself (statistics, metadata, links, checkpoints) are not the ledger's: `$all` skips them. */
export function isUserEvent(resolved: ClientResolvedEvent): boolean {
  const recorded = resolved.event;
  return recorded !== undefined && !recorded.type.startsWith('$') && !recorded.streamId.startsWith('$');
}

export function toRecordedEvent(resolved: ClientResolvedEvent): RecordedEvent {
  const recorded = resolved.event;
  if (recorded === undefined) throw new Error('a resolved event without its event (an unresolved link?)');
  if (!recorded.isJson) throw new Error(`event ${recorded.id} in stream ${recorded.streamId} is not JSON; this store holds JSON events only`);
  return {
    id: recorded.id,
    type: recorded.type,
    // The client decoded the data with JSON.parse (or kept the text when it was not valid JSON): a JSON value either way.
    data: recorded.data as JsonValue,
    metadata: eventMetadataOf(recorded.metadata, recorded.id),
    streamId: recorded.streamId,
    revision: recorded.revision,
    position: fromClientPosition(recorded.position, recorded.id),
    createdAt: recorded.created,
  };
}

function eventMetadataOf(metadata: unknown, eventId: string): EventMetadata {
  if (metadata === undefined) return {};
  if (isPlainObject(metadata)) return metadata as EventMetadata;
  throw new Error(`event ${eventId} has metadata that is not a JSON object`);
}

export function toEventData(event: EventToAppend): JSONEventData {
  return {
    id: event.id,
    contentType: 'application/json',
    type: event.type,
    // The client writes `data` with JSON.stringify, so any JSON value works, though its type names only objects, arrays and text.
    data: event.data as JSONType,
    metadata: { ...event.metadata },
  };
}

/** An append the server answered: written, or (with `throwOnAppendFailure=false` in the URL) a conflict. */
export type AppendOutcome = { readonly written: true; readonly nextRevision: bigint } | { readonly written: false; readonly actualRevision: bigint };

export function appendOutcomeOf(result: ClientAppendResult): AppendOutcome {
  return result.success ? { written: true, nextRevision: result.nextExpectedRevision } : { written: false, actualRevision: result.nextExpectedRevision };
}

/** A rejected append: a wrong expected version is a conflict to classify; any other error is not ours to translate. */
/** gRPC's status codes the client passes through unwrapped (an append's failures come as the raw status error). */
const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_UNAVAILABLE = 14;
/** What the client says when no connection to the node could be made: nothing was sent. */
const NO_CONNECTION = /No connection established/;
/** A cluster's discovery that gave up (every seed unreachable, or no leader): nothing was sent. */
const DISCOVERY_FAILED = /^Failed to discover/;

/**
 * Whether `error` is the connection to EventStoreDB failing rather than an answer of it, and
 * whether the call may have reached a server (`sent`): not when no connection could be made, the
 * cluster's discovery gave up, or the node answered that it is not the leader; yes when the
 * client's deadline passed or a connection was lost once made. Undefined for anything else (a
 * refusal, a conflict, a bug), which stays what it is. By class for the client's own errors, by
 * gRPC status for the raw ones an append rejects with, by message for discovery.
 */
export function transportFailureOf(error: unknown): { readonly sent: boolean } | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, message } = error as { readonly code?: unknown; readonly message?: unknown };
  const text = typeof message === 'string' ? message : '';
  if (DISCOVERY_FAILED.test(text) || error instanceof NotLeaderError) return { sent: false };
  if (error instanceof DeadlineExceededError || code === GRPC_DEADLINE_EXCEEDED) return { sent: true };
  if (error instanceof UnavailableError || code === GRPC_UNAVAILABLE) return { sent: !NO_CONNECTION.test(text) };
  return undefined;
}

export function appendOutcomeOfRejection(error: unknown): AppendOutcome {
  if (!(error instanceof WrongExpectedVersionError)) throw error;
  return { written: false, actualRevision: error.actualVersion === NO_STREAM ? -1n : error.actualVersion };
}

/**
 * The revision a batch appended with this expectation starts at, where EventStoreDB compares event ids
 * for idempotency; undefined for 'any' and 'stream_exists', whose ids it looks up in a cache instead.
 */
export function expectedPlaceOf(expected: ExpectedRevision): bigint | undefined {
  if (expected === 'no_stream') return 0n;
  return typeof expected === 'bigint' ? expected + 1n : undefined;
}

/**
 * Why the server refused an append. EventStoreDB answers "wrong expected version" both for a real
 * conflict and for a batch that only partly repeats an earlier one ("corrupted idempotency"), which
 * the port calls an EventIdConflictError:
 * - with 'any', and with 'stream_exists' on an existing stream, only the partial repeat is possible;
 * - with 'no_stream' or a revision, it is a partial repeat when the event at the expected place is the batch's first.
 */
export function appendConflictError(
  streamId: string,
  expected: ExpectedRevision,
  actualRevision: bigint,
  eventIdAtExpectedPlace: string | undefined,
  firstEventId: string,
): WrongExpectedRevisionError | EventIdConflictError {
  const partlyRepeated =
    expected === 'any' || (expected === 'stream_exists' && actualRevision >= 0n) || (eventIdAtExpectedPlace !== undefined && eventIdAtExpectedPlace === firstEventId);
  return partlyRepeated ? new EventIdConflictError(streamId) : new WrongExpectedRevisionError(streamId, expected, actualRevision);
}

export function isStreamNotFound(error: unknown): boolean {
  return error instanceof StreamNotFoundError;
}

/** The stream holding a stream's metadata. */
export function metadataStreamOf(streamId: string): string {
  return `$$${streamId}`;
}

/**
 * The port's metadata is the custom part of EventStoreDB's stream metadata. Keys starting with `$`
 * are the server's own settings (`$maxAge`, `$maxCount`, `$tb`, `$acl`...): never returned.
 */
export function customMetadataOf(metadataEventData: unknown): StreamMetadata {
  if (!isPlainObject(metadataEventData)) return {};
  return Object.fromEntries(Object.entries(metadataEventData).filter(([key]) => !key.startsWith('$'))) as StreamMetadata;
}

/**
 * The metadata event to write: the caller's keys as custom metadata (written as they are, so `maxCount`
 * stays plain data and truncates nothing), plus the server settings already on the stream, which an
 * operator may have set (ACLs, `$maxAge`) and an application write must not erase.
 */
export function metadataToWrite(currentEventData: unknown, metadata: StreamMetadata): { [key: string]: JsonValue } {
  const reserved = Object.keys(metadata).filter((key) => key.startsWith('$'));
  if (reserved.length > 0) throw new RangeError(`stream metadata keys starting with $ are EventStoreDB settings: ${reserved.join(', ')}`);
  const settings = isPlainObject(currentEventData) ? Object.entries(currentEventData).filter(([key]) => key.startsWith('$')) : [];
  return { ...(Object.fromEntries(settings) as { [key: string]: JsonValue }), ...metadata };
}

function isPlainObject(value: unknown): value is { [key: string]: unknown } {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}
