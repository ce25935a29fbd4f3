import { randomUUID } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '../../../test/support/test-database.js';
import type { EventStore, ReadStreamOptions } from './event-store.port.js';
import { PostgresEventStore } from './postgres/postgres-event-store.js';
import { readStreamPages, readWholeStream, type StreamPagesOptions } from './stream-reader.js';

let database: TestDatabase;
let store: PostgresEventStore;
let reads: ReadStreamOptions[];
let counting: EventStore;

beforeAll(async () => {
  database = await createTestDatabase();
  store = new PostgresEventStore(database.pool, { connectionString: database.url });
  counting = Object.create(store) as EventStore;
  counting.readStream = (streamId, options) => {
    reads.push(options ?? {});
    return store.readStream(streamId, options);
  };
});

beforeEach(() => {
  reads = [];
});

afterAll(async () => {
  await store.close();
  await database.drop();
});

/** A stream of `count` events whose data is their index. */
async function streamOf(count: number): Promise<string> {
  const streamId = `reader-${randomUUID()}`;
  await store.append(streamId, Array.from({ length: count }, (_, index) => ({ id: randomUUID(), type: 'Counted', data: index })), { expectedRevision: 'no_stream' });
  return streamId;
}

async function pagesOf(streamId: string, options: StreamPagesOptions): Promise<bigint[][]> {
  const pages: bigint[][] = [];
  for await (const page of readStreamPages(counting, streamId, options)) pages.push(page.map((event) => event.revision));
  return pages;
}

describe('readStreamPages', () => {
  it('reads the whole stream forwards, one page at a time, and stops after a short page', async () => {
    const streamId = await streamOf(7);
    expect(await pagesOf(streamId, { pageSize: 3 })).toEqual([[0n, 1n, 2n], [3n, 4n, 5n], [6n]]);
    expect(reads.map((read) => read.fromRevision)).toEqual([0n, 3n, 6n]);
  });

  it('reads once more after a full last page, and yields no empty page', async () => {
    const streamId = await streamOf(6);
    expect(await pagesOf(streamId, { pageSize: 3 })).toEqual([[0n, 1n, 2n], [3n, 4n, 5n]]);
    expect(reads).toHaveLength(3);
  });

  it('starts at fromRevision and stops at toRevision without reading past it', async () => {
    const streamId = await streamOf(10);
    expect(await pagesOf(streamId, { fromRevision: 2n, toRevision: 6n, pageSize: 3 })).toEqual([[2n, 3n, 4n], [5n, 6n]]);
    expect(reads.map((read) => read.fromRevision)).toEqual([2n, 5n]);
  });

  it('reads nothing when toRevision is before fromRevision, and nothing is yielded for a missing stream', async () => {
    const streamId = await streamOf(3);
    expect(await pagesOf(streamId, { toRevision: -1n })).toEqual([]);
    expect(reads).toHaveLength(0);
    expect(await pagesOf(`reader-${randomUUID()}`, {})).toEqual([]);
    expect(reads).toHaveLength(1);
  });

  it('follows revisions across a gap instead of counting events, so nothing is read twice', async () => {
    const streamId = await streamOf(6);
    // A damaged stream: revision 1 is gone, so a read of two events from 0 returns 0 and 2.
    await database.pool.query('DELETE FROM events WHERE stream_id = $1 AND stream_revision = 1', [streamId]);
    expect(await pagesOf(streamId, { pageSize: 2 })).toEqual([[0n, 2n], [3n, 4n], [5n]]);
  });
});

describe('readWholeStream', () => {
  it('returns every event of the stream in revision order', async () => {
    const streamId = await streamOf(5);
    expect((await readWholeStream(store, streamId)).map((event) => event.data)).toEqual([0, 1, 2, 3, 4]);
  });

  it('returns the events up to toRevision', async () => {
    const streamId = await streamOf(5);
    expect((await readWholeStream(store, streamId, { toRevision: 2n })).map((event) => event.revision)).toEqual([0n, 1n, 2n]);
  });
});
