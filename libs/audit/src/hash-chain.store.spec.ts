import { PostgresEventStore } from '@app/event-store';
import { createTestDatabase, type TestDatabase } from '../../../test/support/test-database.js';
import { verifyChain, type ChainEvent } from './hash-chain.js';
import { sealedStream, STEPS, streamId } from './testing/sealed-stream.fixtures.js';

// The chain must survive a round trip through the real store (jsonb reorders keys and rewrites
// whitespace: the canonical form makes that irrelevant), and a direct SQL change must show.
let database: TestDatabase;
let store: PostgresEventStore;

beforeAll(async () => {
  database = await createTestDatabase();
  store = new PostgresEventStore(database.pool, { connectionString: database.url });
  const events = sealedStream(STEPS).map(({ id, type, data, metadata }) => ({ id, type, data: data as never, metadata: metadata as never }));
  await store.append(streamId, events, { expectedRevision: 'no_stream' });
});

afterAll(async () => {
  await store.close();
  await database.drop();
});

async function readChain(): Promise<ChainEvent[]> {
  const recorded = await store.readStream(streamId);
  return recorded.map((event) => ({ streamId: event.streamId, revision: event.revision, id: event.id, type: event.type, data: event.data, metadata: event.metadata }));
}

describe('the hash chain in PostgreSQL', () => {
  it('verifies after a round trip through the event store', async () => {
    expect(await readChain()).toHaveLength(5);
    expect(verifyChain(await readChain())).toMatchObject({ ok: true, eventCount: 5 });
  });

  it('reports the first bad revision after a direct SQL change to an amount', async () => {
    await database.pool.query("UPDATE events SET data = jsonb_set(data, '{amount}', '3') WHERE stream_id = $1 AND stream_revision = 3", [streamId]);
    expect(verifyChain(await readChain())).toMatchObject({ ok: false, firstBadRevision: 3n });
  });

  it('reports a deleted event at the revision it leaves empty', async () => {
    await database.pool.query('DELETE FROM events WHERE stream_id = $1 AND stream_revision = 1', [streamId]);
    expect(verifyChain(await readChain())).toMatchObject({ ok: false, firstBadRevision: 1n });
  });
});
