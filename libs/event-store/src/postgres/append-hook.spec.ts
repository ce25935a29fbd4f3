import { randomUUID } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/test-database.js';
import { EventIdConflictError, type AppendResult, type EventToAppend } from '../event-store.port.js';
import type { AppendTransactionHook } from './append-transaction-hook.js';
import { PostgresEventStore } from './postgres-event-store.js';

/**
 * The append hook (what the inline projections install) runs in the transaction that appended, in
 * the same statement: here it records each transaction's id and event count, and refuses a
 * transaction holding a `Poison` event, as a projection whose row cannot be written would.
 */
const hook: AppendTransactionHook = {
  statementsAfterAppend: () => `
    INSERT INTO hook_marks (transaction_id, events)
      SELECT pg_current_xact_id(), count(*) FROM events WHERE transaction_id = pg_current_xact_id();
    DO $$ BEGIN
      IF EXISTS (SELECT 1 FROM events WHERE transaction_id = pg_current_xact_id() AND event_type = 'Poison') THEN
        RAISE EXCEPTION 'a poison event';
      END IF;
    END $$;
    INSERT INTO hook_unique_rows (key) SELECT event_type FROM events WHERE transaction_id = pg_current_xact_id() AND event_type = 'OncePerDatabase';`,
};

function event(type = 'Happened'): EventToAppend {
  return { id: randomUUID(), type, data: {} };
}

describe('PostgreSQL event store: the append hook', () => {
  let database: TestDatabase;
  let store: PostgresEventStore;

  beforeAll(async () => {
    database = await createTestDatabase();
    await database.pool.query('CREATE TABLE hook_marks (transaction_id xid8 NOT NULL, events integer NOT NULL)');
    await database.pool.query('CREATE TABLE hook_unique_rows (key text PRIMARY KEY)');
    store = new PostgresEventStore(database.pool, { connectionString: database.url, appendHook: hook, groupCommit: { maxInFlight: 1 } });
  });

  afterAll(async () => {
    await store.close();
    await database.drop();
  });

  async function marksOf(results: readonly AppendResult[]): Promise<readonly (readonly [string, number])[]> {
    const transactions = [...new Set(results.map((result) => result.position.commit.toString()))];
    const marks = await database.pool.query<{ transaction_id: string; events: number }>(
      'SELECT transaction_id::text AS transaction_id, events FROM hook_marks WHERE transaction_id::text = ANY($1) ORDER BY transaction_id',
      [transactions],
    );
    return marks.rows.map((row) => [row.transaction_id, row.events] as const);
  }

  it('runs the hook in the transaction of a lone append, and says so in the result', async () => {
    const result = await store.append(`hook-${randomUUID()}`, [event(), event()], { expectedRevision: 'no_stream' });
    expect(result).toMatchObject({ nextRevision: 1n, hooksCommitted: true });
    expect(await marksOf([result])).toEqual([[result.position.commit.toString(), 2]]);
  });

  it('runs the hook once in the transaction of a batch, after all of its appends', async () => {
    const blocker = store.append(`hook-${randomUUID()}`, [event()], { expectedRevision: 'any' });
    const batch = Array.from({ length: 4 }, () => store.append(`hook-${randomUUID()}`, [event()], { expectedRevision: 'no_stream' }));
    await blocker;
    const results = await Promise.all(batch);
    for (const result of results) expect(result).toMatchObject({ hooksCommitted: true });
    expect(await marksOf(results)).toEqual([[results[0]?.position.commit.toString(), 4]]);
  });

  it('does not claim the hook ran for an append found already appended', async () => {
    const stream = `hook-${randomUUID()}`;
    const events = [event()];
    await store.append(stream, events, { expectedRevision: 'no_stream' });
    const again = await store.append(stream, events, { expectedRevision: 'no_stream' });
    expect(again).toEqual({ nextRevision: 0n, position: again.position });
  });

  it("answers a unique violation of the hook's own rows as the database error it is, not as an event id conflict, and writes nothing", async () => {
    // An event id conflict means "these events are already appended", which a caller may take for
    // its own earlier attempt; a read model's row that cannot be written is no such thing.
    await store.append(`hook-${randomUUID()}`, [event('OncePerDatabase')], { expectedRevision: 'no_stream' });
    const stream = `hook-${randomUUID()}`;
    const failure: unknown = await store.append(stream, [event('OncePerDatabase')], { expectedRevision: 'no_stream' }).catch((error: unknown) => error);
    expect(failure).not.toBeInstanceOf(EventIdConflictError);
    expect(failure).toMatchObject({ code: '23505', constraint: 'hook_unique_rows_pkey' });
    expect(await store.readStream(stream)).toEqual([]);
  });

  it('fails only the append whose hook fails, in a batch too, and writes none of its events', async () => {
    const poisoned = `hook-${randomUUID()}`;
    const healthy = `hook-${randomUUID()}`;
    const retriedBefore = store.groupCommitStats().retriedAlone;
    const blocker = store.append(`hook-${randomUUID()}`, [event()], { expectedRevision: 'any' });
    const outcomes = Promise.allSettled([
      store.append(poisoned, [event('Poison')], { expectedRevision: 'no_stream' }),
      store.append(healthy, [event()], { expectedRevision: 'no_stream' }),
    ]);
    await blocker;
    const [poison, fine] = await outcomes;
    expect(poison).toMatchObject({ status: 'rejected', reason: expect.objectContaining({ message: 'a poison event' }) });
    expect(poison?.status === 'rejected' && poison.reason instanceof EventIdConflictError).toBe(false);
    expect(fine).toMatchObject({ status: 'fulfilled', value: { nextRevision: 0n, hooksCommitted: true } });
    const written = await database.pool.query<{ stream_id: string }>('SELECT stream_id FROM events WHERE stream_id = ANY($1)', [[poisoned, healthy]]);
    expect(written.rows.map((row) => row.stream_id)).toEqual([healthy]);
    // The batch of the two failed as a whole, and each was retried alone.
    expect(store.groupCommitStats().retriedAlone - retriedBefore).toBe(2);
  });
});
