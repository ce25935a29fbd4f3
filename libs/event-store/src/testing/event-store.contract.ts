import { randomUUID } from 'node:crypto';
import {
  APPEND_COUNT_MAX,
  EventIdConflictError,
  READ_COUNT_MAX,
  WrongExpectedRevisionError,
  type EventStore,
  type EventToAppend,
  type ExpectedRevision,
  type RecordedEvent,
} from '../event-store.port.js';
import { comparePositions, START, type Position } from '../position.js';

export type EventStoreFactory = () => Promise<{ readonly store: EventStore; readonly dispose: () => Promise<void> }>;

export type EventStoreContractOptions = {
  /**
   * Where an adapter looks for event ids it has seen before.
   * - 'store': everywhere. The same ids anywhere but as the same batch at the same place are an
   *   EventIdConflictError (PostgreSQL: a unique index on event ids).
   * - 'expected-place': only at the place the expected revision names, as EventStoreDB does (plus a
   *   best-effort cache of recent ids for 'any'). Elsewhere, the same ids are appended again or refused
   *   as a wrong revision. The suite is tolerant here, and only here, because no EventStoreDB adapter
   *   could do better without an index of every id it ever wrote; the tests then assert what
   *   EventStoreDB does instead, so a change in either direction is noticed.
   */
  readonly eventIdScope: 'store' | 'expected-place';
  /**
   * Whether the adapter says when a call wrote its events (`AppendResult.written`): PostgreSQL does;
   * EventStoreDB answers a write and an idempotent repeat alike. A repeat never says it wrote.
   */
  readonly reportsWrites: boolean;
};

/** How long a test waits for events to become visible in `$all` (PostgreSQL may lag a commit briefly). */
const VISIBILITY_TIMEOUT_MS = 10_000;
/** The concurrency test: appenders on streams of their own, each appending in turns. */
const CONCURRENT_STREAMS = 16;
const TURNS_PER_STREAM = 8;

function event(type = 'Something', data: EventToAppend['data'] = { n: 1 }): EventToAppend {
  return { id: randomUUID(), type, data, metadata: { correlationId: 'c-1' } };
}

function stream(): string {
  return `contract-${randomUUID()}`;
}

async function expectWrongRevision(promise: Promise<unknown>, actual: bigint): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(WrongExpectedRevisionError);
  expect((error as WrongExpectedRevisionError).actual).toBe(actual);
}

async function collect(iterable: AsyncIterable<RecordedEvent>, count: number): Promise<RecordedEvent[]> {
  const events: RecordedEvent[] = [];
  for await (const recorded of iterable) {
    events.push(recorded);
    if (events.length === count) break;
  }
  return events;
}

function expectStrictlyIncreasingPositions(events: readonly RecordedEvent[]): void {
  for (let index = 1; index < events.length; index += 1) {
    expect(comparePositions((events[index - 1] as RecordedEvent).position, (events[index] as RecordedEvent).position)).toBe(-1);
  }
}

/** Every behaviour of the EventStore port, run against each adapter. */
export function describeEventStoreContract(adapterName: string, factory: EventStoreFactory, options: EventStoreContractOptions = { eventIdScope: 'store', reportsWrites: true }): void {
  /** What a call that wrote its events adds to its result. */
  const writtenMark = (): { written?: true } => (options.reportsWrites ? { written: true } : {});

  describe(`event store contract: ${adapterName}`, () => {
    let store: EventStore;
    let dispose: () => Promise<void>;

    beforeAll(async () => {
      ({ store, dispose } = await factory());
    });

    afterAll(async () => {
      await dispose();
    });

    describe('expected revision', () => {
      it('creates a stream with no_stream and refuses no_stream once it exists', async () => {
        const id = stream();
        await expect(store.append(id, [event()], { expectedRevision: 'no_stream' })).resolves.toMatchObject({ nextRevision: 0n });
        await expectWrongRevision(store.append(id, [event()], { expectedRevision: 'no_stream' }), 0n);
      });

      it('refuses stream_exists on a missing stream and accepts it on an existing one', async () => {
        const id = stream();
        await expectWrongRevision(store.append(id, [event()], { expectedRevision: 'stream_exists' }), -1n);
        await store.append(id, [event()], { expectedRevision: 'any' });
        await expect(store.append(id, [event()], { expectedRevision: 'stream_exists' })).resolves.toMatchObject({ nextRevision: 1n });
      });

      it('accepts the exact revision and reports the actual one when it is wrong', async () => {
        const id = stream();
        await store.append(id, [event(), event()], { expectedRevision: 'no_stream' });
        await expect(store.append(id, [event()], { expectedRevision: 1n })).resolves.toMatchObject({ nextRevision: 2n });
        await expectWrongRevision(store.append(id, [event()], { expectedRevision: 1n }), 2n);
        await expectWrongRevision(store.append(id, [event()], { expectedRevision: 5n }), 2n);
        await expectWrongRevision(store.append(stream(), [event()], { expectedRevision: 0n }), -1n);
        expect(await store.readStream(id)).toHaveLength(3);
      });

      it('appends with any whatever the revision', async () => {
        const id = stream();
        await store.append(id, [event()], { expectedRevision: 'any' });
        await expect(store.append(id, [event()], { expectedRevision: 'any' })).resolves.toMatchObject({ nextRevision: 1n });
      });

      it('lets exactly one of many concurrent appends at the same revision win', async () => {
        const id = stream();
        await store.append(id, [event()], { expectedRevision: 'no_stream' });
        const outcomes = await Promise.allSettled(Array.from({ length: 20 }, () => store.append(id, [event()], { expectedRevision: 0n })));
        expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
        const rejected = outcomes.filter((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
        expect(rejected).toHaveLength(19);
        for (const outcome of rejected) {
          expect(outcome.reason).toBeInstanceOf(WrongExpectedRevisionError);
          expect((outcome.reason as WrongExpectedRevisionError).actual).toBe(1n);
        }
        expect(await store.readStream(id)).toHaveLength(2);
      });
    });

    describe('appending', () => {
      it('appends one event at revision 0 and reports the position the event has in the stream', async () => {
        const id = stream();
        const appended = event();
        const result = await store.append(id, [appended], { expectedRevision: 'no_stream' });
        const [recorded] = await store.readStream(id);
        expect(recorded?.id).toBe(appended.id);
        expect(result).toEqual({ nextRevision: 0n, position: recorded?.position, ...writtenMark() });
      });

      it('appends 1,000 events in one call, in order, and reports the position of the last one', async () => {
        const id = stream();
        const batch = Array.from({ length: 1_000 }, (_, index) => event('Numbered', { index }));
        const result = await store.append(id, batch, { expectedRevision: 'no_stream' });
        const all = await store.readStream(id);
        expect(all.map((recorded) => recorded.id)).toEqual(batch.map((appended) => appended.id));
        expect(all.map((recorded) => recorded.data)).toEqual(batch.map((appended) => appended.data));
        expect(all.map((recorded) => recorded.revision)).toEqual(batch.map((_, index) => BigInt(index)));
        expectStrictlyIncreasingPositions(all);
        expect(result).toEqual({ nextRevision: 999n, position: all[999]?.position, ...writtenMark() });
      });

      it('refuses an empty batch and one over APPEND_COUNT_MAX, and writes nothing', async () => {
        const id = stream();
        await expect(store.append(id, [], { expectedRevision: 'any' })).rejects.toThrow(RangeError);
        const tooMany = Array.from({ length: APPEND_COUNT_MAX + 1 }, () => event());
        await expect(store.append(id, tooMany, { expectedRevision: 'any' })).rejects.toThrow(RangeError);
        expect(await store.readStream(id)).toEqual([]);
      });
    });

    describe('idempotency', () => {
      it('treats the same ids appended again at the same place as success without duplicates', async () => {
        const id = stream();
        const batch = [event(), event()];
        const first = await store.append(id, batch, { expectedRevision: 'no_stream' });
        expect(first.written).toBe(writtenMark().written);
        const repeat = { nextRevision: first.nextRevision, position: first.position };
        await expect(store.append(id, batch, { expectedRevision: 'no_stream' })).resolves.toEqual(repeat);
        await expect(store.append(id, batch, { expectedRevision: 'any' })).resolves.toEqual(repeat);
        await expect(store.append(id, batch, { expectedRevision: 'stream_exists' })).resolves.toEqual(repeat);
        expect((await store.readStream(id)).map((recorded) => recorded.id)).toEqual(batch.map((appended) => appended.id));
      });

      it('treats the same ids at an exact revision as success after later appends', async () => {
        const id = stream();
        const batch = [event()];
        await store.append(id, [event()], { expectedRevision: 'no_stream' });
        const first = await store.append(id, batch, { expectedRevision: 0n });
        await store.append(id, [event()], { expectedRevision: 1n });
        await expect(store.append(id, batch, { expectedRevision: 0n })).resolves.toEqual({ nextRevision: first.nextRevision, position: first.position });
        expect(await store.readStream(id)).toHaveLength(3);
      });

      it('refuses a batch that only partly repeats earlier ids, with any or at the same place', async () => {
        const id = stream();
        const repeated = event();
        await store.append(id, [repeated], { expectedRevision: 'no_stream' });
        await expect(store.append(id, [repeated, event()], { expectedRevision: 'any' })).rejects.toBeInstanceOf(EventIdConflictError);
        await expect(store.append(id, [repeated, event()], { expectedRevision: 'no_stream' })).rejects.toBeInstanceOf(EventIdConflictError);
        expect((await store.readStream(id)).map((recorded) => recorded.id)).toEqual([repeated.id]);
      });

      it('refuses the same ids in another stream (EventStoreDB: appends them there too)', async () => {
        const batch = [event()];
        const original = stream();
        const other = stream();
        await store.append(original, batch, { expectedRevision: 'no_stream' });
        const second = store.append(other, batch, { expectedRevision: 'any' });
        if (options.eventIdScope === 'store') {
          await expect(second).rejects.toBeInstanceOf(EventIdConflictError);
          expect(await store.readStream(other)).toEqual([]);
        } else {
          await expect(second).resolves.toMatchObject({ nextRevision: 0n });
          expect((await store.readStream(other)).map((recorded) => recorded.id)).toEqual([batch[0]?.id]);
        }
        expect(await store.readStream(original)).toHaveLength(1);
      });

      it('refuses the same ids appended again at the end of the stream (EventStoreDB: appends a duplicate)', async () => {
        const id = stream();
        const batch = [event()];
        await store.append(id, batch, { expectedRevision: 'no_stream' });
        const again = store.append(id, batch, { expectedRevision: 0n });
        if (options.eventIdScope === 'store') {
          await expect(again).rejects.toBeInstanceOf(EventIdConflictError);
          expect(await store.readStream(id)).toHaveLength(1);
        } else {
          await expect(again).resolves.toMatchObject({ nextRevision: 1n });
          expect((await store.readStream(id)).map((recorded) => recorded.id)).toEqual([batch[0]?.id, batch[0]?.id]);
        }
      });

      it('refuses ids from elsewhere in the stream at the wrong place (EventStoreDB: as a wrong revision)', async () => {
        const id = stream();
        const later = event();
        await store.append(id, [event(), later], { expectedRevision: 'no_stream' });
        const misplaced = store.append(id, [later], { expectedRevision: 'no_stream' });
        if (options.eventIdScope === 'store') await expect(misplaced).rejects.toBeInstanceOf(EventIdConflictError);
        else await expectWrongRevision(misplaced, 1n);
        expect(await store.readStream(id)).toHaveLength(2);
      });
    });

    describe('reading streams', () => {
      it('returns what was appended: ids, types, data, metadata, revisions', async () => {
        const id = stream();
        const appended = event('TokensUsed', { amount: 3, nested: { ok: true }, list: [1, 'two'] });
        await store.append(id, [appended], { expectedRevision: 'no_stream' });
        const [recorded] = await store.readStream(id);
        expect(recorded).toMatchObject({
          id: appended.id,
          type: 'TokensUsed',
          data: { amount: 3, nested: { ok: true }, list: [1, 'two'] },
          metadata: { correlationId: 'c-1' },
          streamId: id,
          revision: 0n,
        });
        expect(recorded?.createdAt).toBeInstanceOf(Date);
      });

      it('reads forwards and backwards from a revision, at most maxCount events', async () => {
        const id = stream();
        await store.append(
          id,
          Array.from({ length: 20 }, (_, index) => event('Numbered', { index })),
          { expectedRevision: 'no_stream' },
        );
        const revisions = async (options: Parameters<EventStore['readStream']>[1]) => (await store.readStream(id, options)).map((recorded) => recorded.revision);
        expect(await revisions({ fromRevision: 10n, maxCount: 5 })).toEqual([10n, 11n, 12n, 13n, 14n]);
        expect(await revisions({ fromRevision: 18n })).toEqual([18n, 19n]);
        expect(await revisions({ maxCount: 2 })).toEqual([0n, 1n]);
        expect(await revisions({ direction: 'backwards', maxCount: 3 })).toEqual([19n, 18n, 17n]);
        expect(await revisions({ direction: 'backwards', fromRevision: 9n, maxCount: 2 })).toEqual([9n, 8n]);
        expect(await revisions({ direction: 'backwards', fromRevision: 1n })).toEqual([1n, 0n]);
      });

      it('reads nothing from past the end of a stream', async () => {
        const id = stream();
        await store.append(id, [event(), event()], { expectedRevision: 'no_stream' });
        await expect(store.readStream(id, { fromRevision: 2n })).resolves.toEqual([]);
        await expect(store.readStream(id, { fromRevision: 50n })).resolves.toEqual([]);
      });

      it('reads a missing stream as empty, in both directions', async () => {
        await expect(store.readStream(stream())).resolves.toEqual([]);
        await expect(store.readStream(stream(), { direction: 'backwards' })).resolves.toEqual([]);
      });

      it.each([0, -1, 1.5, READ_COUNT_MAX + 1])('refuses maxCount %s for streams and $all', async (maxCount) => {
        await expect(store.readStream(stream(), { maxCount })).rejects.toThrow(RangeError);
        await expect(store.readAll({ maxCount })).rejects.toThrow(RangeError);
      });
    });

    describe('stream metadata', () => {
      it('is empty for a new stream and reads back what was set, replacing the earlier value', async () => {
        const id = stream();
        await expect(store.getStreamMetadata(id)).resolves.toEqual({});
        await store.setStreamMetadata(id, { owner: 'u-1', limits: { max: 5 } });
        await store.setStreamMetadata(id, { owner: 'u-2' });
        await expect(store.getStreamMetadata(id)).resolves.toEqual({ owner: 'u-2' });
        await expect(store.getStreamMetadata(stream())).resolves.toEqual({});
      });

      it('keeps metadata as plain data: maxCount and maxAge truncate nothing', async () => {
        const id = stream();
        await store.append(id, [event(), event(), event()], { expectedRevision: 'no_stream' });
        await store.setStreamMetadata(id, { maxCount: 1, maxAge: 1, truncateBefore: 2 });
        await expect(store.getStreamMetadata(id)).resolves.toEqual({ maxCount: 1, maxAge: 1, truncateBefore: 2 });
        expect(await store.readStream(id)).toHaveLength(3);
      });

      it('leaves a stream with metadata but no events empty, so no_stream still creates it', async () => {
        const id = stream();
        await store.setStreamMetadata(id, { owner: 'u-1' });
        await expect(store.readStream(id)).resolves.toEqual([]);
        await expect(store.append(id, [event()], { expectedRevision: 'no_stream' })).resolves.toMatchObject({ nextRevision: 0n });
        await expect(store.getStreamMetadata(id)).resolves.toEqual({ owner: 'u-1' });
      });
    });

    describe('$all', () => {
      it('reads events after a position in commit order, positions strictly increasing', async () => {
        const start = (await store.headPosition()) ?? START;
        const first = stream();
        const second = stream();
        await store.append(first, [event('A'), event('B')], { expectedRevision: 'no_stream' });
        await store.append(second, [event('C')], { expectedRevision: 'no_stream' });
        const read = (await readAllUntil(store, start, new Set([first, second]), 3)).ours;
        expect(read.map((recorded) => recorded.type)).toEqual(['A', 'B', 'C']);
        expectStrictlyIncreasingPositions(read);
        const afterFirst = await store.readAll({ after: (read[0] as RecordedEvent).position, maxCount: 1 });
        expect(afterFirst.map((recorded) => recorded.type)).toEqual(['B']);
      });

      it('pages through $all with maxCount, each page starting strictly after the previous one', async () => {
        const start = (await store.headPosition()) ?? START;
        const id = stream();
        await store.append(
          id,
          Array.from({ length: 7 }, (_, index) => event('Paged', { index })),
          { expectedRevision: 'no_stream' },
        );
        const { ours, all, largestPage } = await readAllUntil(store, start, new Set([id]), 7, 2);
        expect(largestPage).toBeLessThanOrEqual(2);
        expect(ours.map((recorded) => recorded.revision)).toEqual([0n, 1n, 2n, 3n, 4n, 5n, 6n]);
        expectStrictlyIncreasingPositions(all);
        const afterLast = await store.readAll({ after: (ours[6] as RecordedEvent).position });
        expect(afterLast.filter((recorded) => recorded.streamId === id)).toEqual([]);
      });

      it('reports the head as the position of the newest append', async () => {
        const result = await store.append(stream(), [event()], { expectedRevision: 'no_stream' });
        // Visibility may trail a commit briefly (a store reads only settled transactions); never more.
        let head = await store.headPosition();
        for (const deadline = Date.now() + VISIBILITY_TIMEOUT_MS; (head === undefined || comparePositions(head, result.position) < 0) && Date.now() < deadline; ) {
          await new Promise((resolve) => setTimeout(resolve, 10));
          head = await store.headPosition();
        }
        expect(head).toEqual(result.position);
      });

      it('catches up, switches to live, and resumes from a saved position with no gap and no duplicate', async () => {
        const start = (await store.headPosition()) ?? START;
        const id = stream();
        await store.append(id, [event('Old1'), event('Old2')], { expectedRevision: 'no_stream' });

        const controller = new AbortController();
        const seen: RecordedEvent[] = [];
        const live = (async () => {
          for await (const recorded of store.subscribeToAll({ after: start, signal: controller.signal })) {
            if (recorded.streamId === id) seen.push(recorded);
            if (seen.length === 4) break;
          }
        })();
        await waitUntil(() => seen.length === 2, VISIBILITY_TIMEOUT_MS);
        await store.append(id, [event('New1')], { expectedRevision: 1n });
        await store.append(id, [event('New2')], { expectedRevision: 2n });
        await live;
        controller.abort();
        expect(seen.map((recorded) => recorded.type)).toEqual(['Old1', 'Old2', 'New1', 'New2']);

        const saved: Position = (seen[1] as RecordedEvent).position;
        const resumed = await collect(filterStreams(store.subscribeToAll({ after: saved }), new Set([id])), 2);
        expect(resumed.map((recorded) => recorded.type)).toEqual(['New1', 'New2']);
      });

      it('ends a live subscription promptly when its signal aborts', async () => {
        const head = (await store.headPosition()) ?? START;
        const id = stream();
        const controller = new AbortController();
        const received: RecordedEvent[] = [];
        const done = (async () => {
          for await (const recorded of store.subscribeToAll({ after: head, signal: controller.signal })) if (recorded.streamId === id) received.push(recorded);
        })();
        await store.append(id, [event('BeforeAbort')], { expectedRevision: 'no_stream' });
        await waitUntil(() => received.length === 1, VISIBILITY_TIMEOUT_MS);
        controller.abort();
        let timer: NodeJS.Timeout | undefined;
        const outcome = await Promise.race([done.then(() => 'ended'), new Promise((resolve) => (timer = setTimeout(() => resolve('still running'), 2_000)))]);
        clearTimeout(timer);
        expect(outcome).toBe('ended');
        await store.append(id, [event('AfterAbort')], { expectedRevision: 0n });
        expect(received.map((recorded) => recorded.type)).toEqual(['BeforeAbort']);
      });
    });

    describe('ordering under concurrency', () => {
      it('delivers the events of many concurrent appenders exactly once, positions strictly increasing, in $all and a subscription', async () => {
        const start = (await store.headPosition()) ?? START;
        const streams = Array.from({ length: CONCURRENT_STREAMS }, () => stream());
        const ours = new Set(streams);
        const expectedCount = CONCURRENT_STREAMS * Array.from({ length: TURNS_PER_STREAM }, (_, turn) => batchSizeOf(turn)).reduce((sum, size) => sum + size, 0);
        const controller = new AbortController();
        const timeout = setTimeout(() => controller.abort(), VISIBILITY_TIMEOUT_MS);
        // The subscription starts before the appenders, so it delivers both caught-up and live events.
        const subscribed = collect(filterStreams(store.subscribeToAll({ after: start, signal: controller.signal }), ours), expectedCount);
        const appended = (await Promise.all(streams.map((id) => appendInTurns(store, id, TURNS_PER_STREAM)))).flat();
        expect(appended).toHaveLength(expectedCount);

        const { ours: read, all } = await readAllUntil(store, start, ours, expectedCount, 50);
        const delivered = await subscribed;
        clearTimeout(timeout);
        controller.abort();

        expectExactlyOnceInStreamOrder(read, appended);
        expectStrictlyIncreasingPositions(all);
        expectExactlyOnceInStreamOrder(delivered, appended);
        expectStrictlyIncreasingPositions(delivered);
        expect(delivered.map((recorded) => recorded.id)).toEqual(read.map((recorded) => recorded.id));
      });
    });
  });
}

/** 1, 2 or 3 events: appends of one event and of several interleave in `$all`. */
function batchSizeOf(turn: number): number {
  return 1 + (turn % 3);
}

/** Appends `turns` batches one after the other, each at the revision the previous one left. */
async function appendInTurns(store: EventStore, streamId: string, turns: number): Promise<EventToAppend[]> {
  const appended: EventToAppend[] = [];
  let expectedRevision: ExpectedRevision = 'no_stream';
  for (let turn = 0; turn < turns; turn += 1) {
    const batch = Array.from({ length: batchSizeOf(turn) }, () => event('Concurrent', { turn }));
    ({ nextRevision: expectedRevision } = await store.append(streamId, batch, { expectedRevision }));
    appended.push(...batch);
  }
  return appended;
}

function expectExactlyOnceInStreamOrder(received: readonly RecordedEvent[], appended: readonly EventToAppend[]): void {
  expect(received).toHaveLength(appended.length);
  expect(new Set(received.map((recorded) => recorded.id))).toEqual(new Set(appended.map((sent) => sent.id)));
  const nextRevisionByStream = new Map<string, bigint>();
  for (const recorded of received) {
    expect(recorded.revision).toBe(nextRevisionByStream.get(recorded.streamId) ?? 0n);
    nextRevisionByStream.set(recorded.streamId, recorded.revision + 1n);
  }
}

/**
 * Reads `$all` after `after` in pages of `pageSize`, each from the last position read, as a checkpointing
 * reader does, until `count` events of `streams` have arrived (polling, since PostgreSQL's `$all` may trail
 * a commit while a transaction in another database of the server is open) or the time is up.
 */
async function readAllUntil(
  store: EventStore,
  after: Position,
  streams: ReadonlySet<string>,
  count: number,
  pageSize = READ_COUNT_MAX,
): Promise<{ readonly ours: RecordedEvent[]; readonly all: RecordedEvent[]; readonly largestPage: number }> {
  const all: RecordedEvent[] = [];
  let largestPage = 0;
  let cursor = after;
  const deadline = Date.now() + VISIBILITY_TIMEOUT_MS;
  while (all.filter((recorded) => streams.has(recorded.streamId)).length < count && Date.now() < deadline) {
    const page = await store.readAll({ after: cursor, maxCount: pageSize });
    largestPage = Math.max(largestPage, page.length);
    all.push(...page);
    const last = page[page.length - 1];
    if (last === undefined) await new Promise((resolve) => setTimeout(resolve, 10));
    else cursor = last.position;
  }
  return { ours: all.filter((recorded) => streams.has(recorded.streamId)), all, largestPage };
}

async function* filterStreams(iterable: AsyncIterable<RecordedEvent>, streams: ReadonlySet<string>): AsyncGenerator<RecordedEvent> {
  for await (const recorded of iterable) if (streams.has(recorded.streamId)) yield recorded;
}

export async function waitUntil(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
