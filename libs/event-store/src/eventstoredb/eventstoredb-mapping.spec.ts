import { StreamNotFoundError, WrongExpectedVersionError, type AllStreamResolvedEvent, type ResolvedEvent } from '@eventstore/db-client';
import { EventIdConflictError, WrongExpectedRevisionError } from '../event-store.port.js';
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
} from './eventstoredb-mapping.js';

const EVENT_ID = '5b0c7cf2-4a55-4f55-9d8e-8ba0e3e7f0a1';
const OTHER_EVENT_ID = 'a3f1a4c6-0f0d-4b7e-8a55-6f1f4f2f9e10';
const CREATED = new Date('2026-01-02T03:04:05.678Z');
const UINT64_MAX = 2n ** 64n - 1n;

/** A JSON event as the client returns it from a read of `$all`. */
function jsonResolved(overrides: Partial<{ streamId: string; type: string; data: unknown; metadata: unknown; position: { commit: bigint; prepare: bigint } }> = {}): AllStreamResolvedEvent {
  return {
    event: {
      streamId: overrides.streamId ?? 'token-account-u-1',
      id: EVENT_ID,
      isJson: true,
      revision: 7n,
      type: overrides.type ?? 'TokensUsed',
      created: CREATED,
      data: (overrides.data ?? { amount: 3 }) as Record<string, unknown>,
      metadata: 'metadata' in overrides ? (overrides.metadata as Record<string, unknown> | undefined) : { correlationId: 'c-1' },
      position: overrides.position ?? { commit: 1_234n, prepare: 1_234n },
    },
    commitPosition: 1_234n,
  };
}

function binaryResolved(): ResolvedEvent {
  return {
    event: {
      streamId: 'token-account-u-1',
      id: EVENT_ID,
      isJson: false,
      revision: 0n,
      type: 'Blob',
      created: CREATED,
      data: new Uint8Array([1, 2, 3]),
      metadata: undefined,
      position: { commit: 10n, prepare: 10n },
    },
  };
}

describe('EventStoreDB mapping', () => {
  describe('expected revisions', () => {
    it.each([
      ['any', 'any'],
      ['no_stream', 'no_stream'],
      ['stream_exists', 'stream_exists'],
    ] as const)('maps %s to the client constant %s', (expected, client) => {
      expect(toClientExpectedRevision(expected)).toBe(client);
    });

    it('passes an exact revision through, up to the largest one', () => {
      expect(toClientExpectedRevision(0n)).toBe(0n);
      expect(toClientExpectedRevision(2n ** 63n - 1n)).toBe(2n ** 63n - 1n);
    });

    it('refuses a negative revision rather than send it', () => {
      expect(() => toClientExpectedRevision(-1n)).toThrow(RangeError);
    });

    it('names the place where EventStoreDB compares ids: 0 for no_stream, n + 1 for n, none for any and stream_exists', () => {
      expect(expectedPlaceOf('no_stream')).toBe(0n);
      expect(expectedPlaceOf(4n)).toBe(5n);
      expect(expectedPlaceOf('any')).toBeUndefined();
      expect(expectedPlaceOf('stream_exists')).toBeUndefined();
    });
  });

  describe('positions', () => {
    it('reads the start of $all from the client constant and any other position as the same pair', () => {
      expect(toClientPosition({ commit: 0n, prepare: 0n })).toBe('start');
      expect(toClientPosition({ commit: 5n, prepare: 4n })).toEqual({ commit: 5n, prepare: 4n });
    });

    it('keeps both parts of a position exactly, up to the largest known 64-bit values', () => {
      const position = { commit: UINT64_MAX - 1n, prepare: 2n ** 63n + 5n };
      expect(fromClientPosition(position, EVENT_ID)).toEqual(position);
      expect(fromClientPosition({ commit: 9_007_199_254_740_993n, prepare: 9_007_199_254_740_993n }, EVENT_ID)).toEqual({
        commit: 9_007_199_254_740_993n,
        prepare: 9_007_199_254_740_993n,
      });
    });

    it('refuses an event without a position, and the server marker for an unknown one', () => {
      expect(() => fromClientPosition(undefined, EVENT_ID)).toThrow(/22\.6/);
      expect(() => fromClientPosition({ commit: UINT64_MAX, prepare: UINT64_MAX }, EVENT_ID)).toThrow(EVENT_ID);
    });
  });

  describe('recorded events', () => {
    it('maps id, type, data, metadata, stream, revision, position and creation time', () => {
      expect(toRecordedEvent(jsonResolved({ data: { amount: 3, nested: { list: [1, 'two'] } } }))).toEqual({
        id: EVENT_ID,
        type: 'TokensUsed',
        data: { amount: 3, nested: { list: [1, 'two'] } },
        metadata: { correlationId: 'c-1' },
        streamId: 'token-account-u-1',
        revision: 7n,
        position: { commit: 1_234n, prepare: 1_234n },
        createdAt: CREATED,
      });
    });

    it('reads absent metadata as an empty object', () => {
      expect(toRecordedEvent(jsonResolved({ metadata: undefined })).metadata).toEqual({});
    });

    it('refuses binary events and metadata that is not a JSON object', () => {
      expect(() => toRecordedEvent(binaryResolved())).toThrow(/not JSON/);
      expect(() => toRecordedEvent(jsonResolved({ metadata: new Uint8Array([1]) }))).toThrow(/metadata/);
      expect(() => toRecordedEvent(jsonResolved({ metadata: ['a'] }))).toThrow(/metadata/);
    });

    it('refuses a resolved event that has no event', () => {
      expect(() => toRecordedEvent({})).toThrow(/without its event/);
    });

    it.each([
      ['a ledger event', true, 'token-account-u-1', 'TokensUsed'],
      ['server statistics', false, '$stats-127.0.0.1:2113', '$statsCollected'],
      ['a link', false, '$ce-token', '$>'],
      ['stream metadata', false, '$$token-account-u-1', '$metadata'],
      ['a persistent subscription checkpoint of an older server', false, '$persistentsubscription-g::s-checkpoint', 'SubscriptionCheckpoint'],
    ])('%s is a user event: %s', (_name, expected, streamId, type) => {
      expect(isUserEvent(jsonResolved({ streamId, type }))).toBe(expected);
    });

    it('does not count a resolved event without its event as a user event', () => {
      expect(isUserEvent({})).toBe(false);
    });
  });

  describe('events to append', () => {
    it('sends JSON with the writer chosen id, type, data and metadata', () => {
      expect(toEventData({ id: EVENT_ID, type: 'TokensPurchased', data: { amount: 5 }, metadata: { requestId: 'r-1' } })).toEqual({
        id: EVENT_ID,
        contentType: 'application/json',
        type: 'TokensPurchased',
        data: { amount: 5 },
        metadata: { requestId: 'r-1' },
      });
    });

    it('sends an empty metadata object when there is none, as the PostgreSQL adapter stores it', () => {
      expect(toEventData({ id: EVENT_ID, type: 'T', data: 1 }).metadata).toEqual({});
    });
  });

  describe('append outcomes and errors', () => {
    it('reads a successful append as written at its next revision', () => {
      expect(appendOutcomeOf({ success: true, nextExpectedRevision: 4n, position: { commit: 9n, prepare: 9n } })).toEqual({ written: true, nextRevision: 4n });
    });

    it('reads a failed append (throwOnAppendFailure=false) as a conflict at the current revision, -1 for no stream', () => {
      expect(appendOutcomeOf({ success: false, nextExpectedRevision: 2n })).toEqual({ written: false, actualRevision: 2n });
      expect(appendOutcomeOf({ success: false, nextExpectedRevision: -1n })).toEqual({ written: false, actualRevision: -1n });
    });

    it('reads a wrong expected version as a conflict with the actual revision, -1 when the stream does not exist', () => {
      const missing = new WrongExpectedVersionError(undefined, { streamName: 's', expected: 0n, current: 'no_stream' });
      const existing = new WrongExpectedVersionError(undefined, { streamName: 's', expected: 'no_stream', current: 4n });
      expect(appendOutcomeOfRejection(missing)).toEqual({ written: false, actualRevision: -1n });
      expect(appendOutcomeOfRejection(existing)).toEqual({ written: false, actualRevision: 4n });
    });

    it('rethrows any other error unchanged', () => {
      const unavailable = new Error('14 UNAVAILABLE');
      expect(() => appendOutcomeOfRejection(unavailable)).toThrow(unavailable);
    });

    it('reports a real conflict as WrongExpectedRevisionError carrying the actual revision', () => {
      const error = appendConflictError('s', 1n, 2n, OTHER_EVENT_ID, EVENT_ID);
      expect(error).toBeInstanceOf(WrongExpectedRevisionError);
      expect(error).toMatchObject({ streamId: 's', expected: 1n, actual: 2n });
      expect(appendConflictError('s', 'no_stream', 0n, OTHER_EVENT_ID, EVENT_ID)).toMatchObject({ actual: 0n });
      expect(appendConflictError('s', 'stream_exists', -1n, undefined, EVENT_ID)).toMatchObject({ actual: -1n });
      expect(appendConflictError('s', 3n, -1n, undefined, EVENT_ID)).toBeInstanceOf(WrongExpectedRevisionError);
    });

    it('reports a batch that only partly repeats an earlier one as EventIdConflictError', () => {
      expect(appendConflictError('s', 'any', 0n, undefined, EVENT_ID)).toBeInstanceOf(EventIdConflictError);
      expect(appendConflictError('s', 'stream_exists', 3n, undefined, EVENT_ID)).toBeInstanceOf(EventIdConflictError);
      expect(appendConflictError('s', 'no_stream', 0n, EVENT_ID, EVENT_ID)).toBeInstanceOf(EventIdConflictError);
      expect(appendConflictError('s', 4n, 5n, EVENT_ID, EVENT_ID)).toBeInstanceOf(EventIdConflictError);
    });

    it('recognises a missing stream only by the client error for it', () => {
      expect(isStreamNotFound(new StreamNotFoundError(undefined, 'token-account-u-1'))).toBe(true);
      expect(isStreamNotFound(new Error('stream not found'))).toBe(false);
    });
  });

  describe('stream metadata', () => {
    it('lives in the $$ stream of the stream', () => {
      expect(metadataStreamOf('token-account-u-1')).toBe('$$token-account-u-1');
    });

    it('returns the custom keys and hides the server settings', () => {
      expect(customMetadataOf({ owner: 'u-1', limits: { max: 5 }, $maxAge: 60, $acl: { $r: '$all' } })).toEqual({ owner: 'u-1', limits: { max: 5 } });
    });

    it('reads no metadata, or metadata that is not a JSON object, as empty', () => {
      expect(customMetadataOf(undefined)).toEqual({});
      expect(customMetadataOf(['x'])).toEqual({});
      expect(customMetadataOf('text')).toEqual({});
    });

    it('writes the caller keys as they are, so maxCount stays data and truncates nothing', () => {
      expect(metadataToWrite(undefined, { maxCount: 1, maxAge: 2 })).toEqual({ maxCount: 1, maxAge: 2 });
    });

    it('keeps the server settings already on the stream and replaces the earlier custom keys', () => {
      expect(metadataToWrite({ $maxAge: 60, owner: 'u-1', old: true }, { owner: 'u-2' })).toEqual({ $maxAge: 60, owner: 'u-2' });
    });

    it('refuses keys that would be server settings', () => {
      expect(() => metadataToWrite(undefined, { $tb: 5 })).toThrow(/\$tb/);
    });
  });
});
