import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/test-database.js';
import type { EventToAppend } from '../event-store.port.js';
import { PostgresEventStore } from './postgres-event-store.js';

function event(type: string): EventToAppend {
  return { id: randomUUID(), type, data: { type } };
}

describe('PostgreSQL event store: what it offers beyond the port', () => {
  let database: TestDatabase;
  let store: PostgresEventStore;

  beforeAll(async () => {
    database = await createTestDatabase();
    store = new PostgresEventStore(database.pool, { connectionString: database.url });
  });

  afterAll(async () => {
    await store.close();
    await database.drop();
  });

  /** A stream of `count` events, E0, E1, ...; returns its id and the events' ids. */
  async function streamOf(count: number): Promise<{ readonly streamId: string; readonly ids: readonly string[] }> {
    const streamId = `capabilities-${randomUUID()}`;
    const events = Array.from({ length: count }, (_, index) => event(`E${index}`));
    await store.append(streamId, events, { expectedRevision: 'no_stream' });
    return { streamId, ids: events.map((each) => each.id) };
  }

  async function saveSnapshot(streamId: string, schemaVersion: number, revision: number, lastEventId: string): Promise<void> {
    await database.pool.query('INSERT INTO snapshots (stream_id, schema_version, revision, last_event_id, state, checksum) VALUES ($1, $2, $3, $4, $5, $6)', [
      streamId,
      schemaVersion,
      revision,
      lastEventId,
      `{"at":${revision}}`,
      `checksum-${revision}`,
    ]);
  }

  describe('readStreamFromSnapshot', () => {
    it('reads the stream from its first event when it has no snapshot, at most maxCount events', async () => {
      const { streamId } = await streamOf(5);
      const read = await store.postgres.readStreamFromSnapshot(streamId, 1, 3);
      expect(read.snapshot).toBeUndefined();
      expect(read.events.map((each) => [each.type, each.revision])).toEqual([
        ['E0', 0n],
        ['E1', 1n],
        ['E2', 2n],
      ]);
    });

    it('reads the snapshot and the events from its revision on, the snapshot event included to check it against', async () => {
      const { streamId, ids } = await streamOf(6);
      await saveSnapshot(streamId, 2, 3, ids[3] ?? '');
      const read = await store.postgres.readStreamFromSnapshot(streamId, 2, 100);
      expect(read.snapshot).toEqual({ revision: 3n, lastEventId: ids[3], state: '{"at":3}', checksum: 'checksum-3' });
      expect(read.events.map((each) => each.type)).toEqual(['E3', 'E4', 'E5']);
      expect(read.events[0]?.id).toBe(ids[3]);
    });

    it('ignores a snapshot of another schema version and reads the whole stream', async () => {
      const { streamId, ids } = await streamOf(3);
      await saveSnapshot(streamId, 1, 2, ids[2] ?? '');
      const read = await store.postgres.readStreamFromSnapshot(streamId, 2, 100);
      expect(read.snapshot).toBeUndefined();
      expect(read.events.map((each) => each.type)).toEqual(['E0', 'E1', 'E2']);
    });

    it('returns a snapshot whose event is gone without events, so the caller sees it cannot be checked', async () => {
      const { streamId, ids } = await streamOf(2);
      await saveSnapshot(streamId, 2, 7, ids[1] ?? '');
      const read = await store.postgres.readStreamFromSnapshot(streamId, 2, 100);
      expect(read).toEqual({ snapshot: { revision: 7n, lastEventId: ids[1], state: '{"at":7}', checksum: 'checksum-7' }, events: [] });
    });

    it('reads nothing for a stream never written', async () => {
      expect(await store.postgres.readStreamFromSnapshot(`capabilities-${randomUUID()}`, 2, 100)).toEqual({ snapshot: undefined, events: [] });
    });
  });

  describe('readEvent', () => {
    it('reads one event by its id in the stream that holds it, and nothing for another stream or an unknown id', async () => {
      const { streamId, ids } = await streamOf(3);
      const other = await streamOf(1);
      expect(await store.postgres.readEvent(streamId, ids[1] as string)).toMatchObject({ id: ids[1], type: 'E1', streamId, revision: 1n, data: { type: 'E1' } });
      expect(await store.postgres.readEvent(other.streamId, ids[1] as string)).toBeUndefined();
      expect(await store.postgres.readEvent(streamId, randomUUID())).toBeUndefined();
    });
  });

  describe('holdStream', () => {
    it('holds appends to the stream until the holding transaction ends', async () => {
      const { streamId } = await streamOf(1);
      const holder = new Client({ connectionString: database.url });
      await holder.connect();
      try {
        await holder.query('BEGIN');
        await store.postgres.holdStream(holder, streamId);
        let appended = false;
        const append = store.append(streamId, [event('AfterHold')], { expectedRevision: 0n }).then((result) => {
          appended = true;
          return result;
        });
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(appended).toBe(false);
        await holder.query('COMMIT');
        await expect(append).resolves.toMatchObject({ nextRevision: 1n });
      } finally {
        await holder.end();
      }
    });
  });

  describe('readStream', () => {
    it('reads backwards from the newest event or from a revision, at most maxCount', async () => {
      const { streamId } = await streamOf(4);
      expect((await store.readStream(streamId, { direction: 'backwards', maxCount: 2 })).map((each) => each.type)).toEqual(['E3', 'E2']);
      expect((await store.readStream(streamId, { direction: 'backwards', fromRevision: 1n })).map((each) => each.type)).toEqual(['E1', 'E0']);
      expect((await store.readStream(streamId, { fromRevision: 2n })).map((each) => each.type)).toEqual(['E2', 'E3']);
    });
  });
});
