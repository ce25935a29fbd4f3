import { randomUUID } from 'node:crypto';
import { EventIdConflictError, WrongExpectedRevisionError, type EventStore, type EventToAppend, type RecordedEvent } from '../event-store.port.js';
import { comparePositions, START, type Position } from '../position.js';

export type EventStoreFactory = () => Promise<{ readonly store: EventStore; readonly dispose: () => Promise<void> }>;

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

/** Every behaviour of the EventStore port, run against each adapter. */
export function describeEventStoreContract(adapterName: string, factory: EventStoreFactory): void {
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
        await expectWrongRevision(store.append(stream(), [event()], { expectedRevision: 0n }), -1n);
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
        for (const outcome of rejected) expect(outcome.reason).toBeInstanceOf(WrongExpectedRevisionError);
        expect(await store.readStream(id)).toHaveLength(2);
      });
    });

    describe('idempotency', () => {
      it('treats the same ids appended again at the same place as success without duplicates', async () => {
        const id = stream();
        const batch = [event(), event()];
        const first = await store.append(id, batch, { expectedRevision: 'no_stream' });
        await expect(store.append(id, batch, { expectedRevision: 'no_stream' })).resolves.toEqual(first);
        await expect(store.append(id, batch, { expectedRevision: 'any' })).resolves.toEqual(first);
        expect(await store.readStream(id)).toHaveLength(2);
      });

      it('treats the same ids at an exact revision as success after later appends', async () => {
        const id = stream();
        const batch = [event()];
        await store.append(id, [event()], { expectedRevision: 'no_stream' });
        const first = await store.append(id, batch, { expectedRevision: 0n });
        await store.append(id, [event()], { expectedRevision: 1n });
        await expect(store.append(id, batch, { expectedRevision: 0n })).resolves.toEqual(first);
        expect(await store.readStream(id)).toHaveLength(3);
      });

      it('refuses the same ids in another stream', async () => {
        const batch = [event()];
        await store.append(stream(), batch, { expectedRevision: 'no_stream' });
        await expect(store.append(stream(), batch, { expectedRevision: 'any' })).rejects.toBeInstanceOf(EventIdConflictError);
      });

      it('refuses a batch that only partly repeats earlier ids', async () => {
        const id = stream();
        const repeated = event();
        await store.append(id, [repeated], { expectedRevision: 'no_stream' });
        await expect(store.append(id, [repeated, event()], { expectedRevision: 'any' })).rejects.toBeInstanceOf(EventIdConflictError);
        expect(await store.readStream(id)).toHaveLength(1);
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

      it('appends 1,000 events at once and reads them forwards and backwards with maxCount', async () => {
        const id = stream();
        const batch = Array.from({ length: 1_000 }, (_, index) => event('Numbered', { index }));
        await expect(store.append(id, batch, { expectedRevision: 'no_stream' })).resolves.toMatchObject({ nextRevision: 999n });
        const all = await store.readStream(id);
        expect(all.map((recorded) => recorded.data)).toEqual(batch.map((appended) => appended.data));
        expect(all.map((recorded) => recorded.revision)).toEqual(batch.map((_, index) => BigInt(index)));

        const page = await store.readStream(id, { fromRevision: 10n, maxCount: 5 });
        expect(page.map((recorded) => recorded.revision)).toEqual([10n, 11n, 12n, 13n, 14n]);
        const lastThree = await store.readStream(id, { direction: 'backwards', maxCount: 3 });
        expect(lastThree.map((recorded) => recorded.revision)).toEqual([999n, 998n, 997n]);
        const beforeTen = await store.readStream(id, { direction: 'backwards', fromRevision: 9n, maxCount: 2 });
        expect(beforeTen.map((recorded) => recorded.revision)).toEqual([9n, 8n]);
      });

      it('reads a missing stream as empty', async () => {
        await expect(store.readStream(stream())).resolves.toEqual([]);
      });
    });

    describe('stream metadata', () => {
      it('is empty for a new stream and reads back what was set, replacing the earlier value', async () => {
        const id = stream();
        await expect(store.getStreamMetadata(id)).resolves.toEqual({});
        await store.setStreamMetadata(id, { owner: 'u-1', limits: { max: 5 } });
        await store.setStreamMetadata(id, { owner: 'u-2' });
        await expect(store.getStreamMetadata(id)).resolves.toEqual({ owner: 'u-2' });
      });
    });

    describe('$all', () => {
      it('reads events after a position in commit order, positions strictly increasing', async () => {
        const start = (await store.headPosition()) ?? START;
        const first = stream();
        const second = stream();
        await store.append(first, [event('A'), event('B')], { expectedRevision: 'no_stream' });
        await store.append(second, [event('C')], { expectedRevision: 'no_stream' });
        const read = (await store.readAll({ after: start })).filter((recorded) => recorded.streamId === first || recorded.streamId === second);
        expect(read.map((recorded) => recorded.type)).toEqual(['A', 'B', 'C']);
        for (let index = 1; index < read.length; index += 1) {
          expect(comparePositions((read[index - 1] as RecordedEvent).position, (read[index] as RecordedEvent).position)).toBe(-1);
        }
        const afterFirst = await store.readAll({ after: (read[0] as RecordedEvent).position, maxCount: 1 });
        expect(afterFirst.map((recorded) => recorded.type)).toEqual(['B']);
      });

      it('reports the head as the position of the newest append', async () => {
        const result = await store.append(stream(), [event()], { expectedRevision: 'no_stream' });
        // Visibility may trail a commit briefly (a store reads only settled transactions); never more.
        let head = await store.headPosition();
        for (const deadline = Date.now() + 5_000; (head === undefined || comparePositions(head, result.position) < 0) && Date.now() < deadline; ) {
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
        await waitUntil(() => seen.length === 2);
        await store.append(id, [event('New1')], { expectedRevision: 1n });
        await store.append(id, [event('New2')], { expectedRevision: 2n });
        await live;
        controller.abort();
        expect(seen.map((recorded) => recorded.type)).toEqual(['Old1', 'Old2', 'New1', 'New2']);

        const saved: Position = (seen[1] as RecordedEvent).position;
        const resumed = await collect(
          filterStream(store.subscribeToAll({ after: saved }), id),
          2,
        );
        expect(resumed.map((recorded) => recorded.type)).toEqual(['New1', 'New2']);
      });

      it('ends a live subscription when its signal aborts', async () => {
        const controller = new AbortController();
        const head = (await store.headPosition()) ?? START;
        const done = (async () => {
          const received: RecordedEvent[] = [];
          for await (const recorded of store.subscribeToAll({ after: head, signal: controller.signal })) received.push(recorded);
          return received;
        })();
        setTimeout(() => controller.abort(), 50);
        // Ending at all is the point (a subscription that ignores its signal times this test out). What it saw
        // before the abort is not: events committed before `head` was read may still become visible after it.
        await expect(done).resolves.toBeInstanceOf(Array);
      });
    });
  });
}

async function* filterStream(iterable: AsyncIterable<RecordedEvent>, streamId: string): AsyncGenerator<RecordedEvent> {
  for await (const recorded of iterable) if (recorded.streamId === streamId) yield recorded;
}

export async function waitUntil(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
