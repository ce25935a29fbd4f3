import { randomUUID } from 'node:crypto';
import pg, { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/test-database.js';
import { frozenableProxy } from '../../../../test/support/frozenable-proxy.js';
import { untilASessionWaitsOnALock } from '../../../../test/support/lock-wait.js';
import { AppendDeadlineExceededError, EventIdConflictError, WrongExpectedRevisionError, type AppendResult, type EventToAppend } from '../event-store.port.js';
import type { Pool, QueryConfig } from 'pg';
import { appendPool, BUSY_RETRY_MS, DEFAULT_GROUP_COMMIT_OPTIONS, GroupCommit, type GroupCommitOptions } from './group-commit.js';
import { PostgresEventStore } from './postgres-event-store.js';

function event(type = 'Happened', data: Record<string, number> = {}): EventToAppend {
  return { id: randomUUID(), type, data };
}

function settle<T>(promises: readonly Promise<T>[]): Promise<PromiseSettledResult<T>[]> {
  return Promise.allSettled(promises);
}

describe('PostgreSQL event store: group commit', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase();
  });

  afterAll(async () => {
    await database.drop();
  });

  async function withStore<T>(maxInFlight: number, work: (store: PostgresEventStore) => Promise<T>, limits: Partial<GroupCommitOptions> = {}): Promise<T> {
    const store = new PostgresEventStore(database.pool, { connectionString: database.url, groupCommit: { maxInFlight, ...limits } });
    try {
      return await work(store);
    } finally {
      await store.close();
    }
  }

  async function transactionsOf(streams: readonly string[]): Promise<number> {
    const result = await database.pool.query<{ count: string }>('SELECT count(DISTINCT transaction_id) AS count FROM events WHERE stream_id = ANY($1)', [streams]);
    return Number(result.rows[0]?.count);
  }

  it('commits appends that arrive together in shared transactions, each with its own result', async () => {
    const streams = Array.from({ length: 40 }, () => `group-${randomUUID()}`);
    const results = await withStore(1, (store) => Promise.all(streams.map((stream) => store.append(stream, [event(), event()], { expectedRevision: 'no_stream' }))));

    // The first append goes alone; the 39 that queued behind it share one transaction.
    expect(await transactionsOf(streams)).toBe(2);
    for (const [index, stream] of streams.entries()) {
      const recorded = await database.pool.query<{ stream_revision: string; global_position: string; transaction_id: string }>(
        'SELECT stream_revision, global_position, transaction_id::text FROM events WHERE stream_id = $1 ORDER BY stream_revision',
        [stream],
      );
      expect(recorded.rows.map((row) => Number(row.stream_revision))).toEqual([0, 1]);
      const last = recorded.rows[1];
      expect(results[index]).toEqual({ nextRevision: 1n, position: { commit: BigInt(last?.transaction_id ?? ''), prepare: BigInt(last?.global_position ?? '') }, written: true });
    }
  });

  it('reports the size of every batch it sends: the lone first append, then the 39 queued behind it', async () => {
    const streams = Array.from({ length: 40 }, () => `group-${randomUUID()}`);
    const sizes: number[] = [];
    const store = new PostgresEventStore(database.pool, { connectionString: database.url, groupCommit: { maxInFlight: 1 }, onAppendBatch: (appends) => sizes.push(appends) });
    try {
      await Promise.all(streams.map((stream) => store.append(stream, [event()], { expectedRevision: 'no_stream' })));
    } finally {
      await store.close();
    }
    expect(sizes).toEqual([1, 39]);
  });

  it('appends a batch of ordinary appends to existing streams set-wise, with the right revisions and positions', async () => {
    const streams = Array.from({ length: 30 }, () => `group-${randomUUID()}`);
    await withStore(4, (store) => Promise.all(streams.map((stream) => store.append(stream, [event()], { expectedRevision: 'no_stream' }))));
    const results = await withStore(1, (store) =>
      Promise.all(
        streams.map((stream, index) =>
          store.append(stream, [event('X'), event('Y'), event('Z')], { expectedRevision: index % 3 === 0 ? 'any' : index % 3 === 1 ? 'stream_exists' : 0n }),
        ),
      ),
    );
    for (const [index, stream] of streams.entries()) {
      const recorded = await database.pool.query<{ stream_revision: string; event_type: string; global_position: string; transaction_id: string }>(
        'SELECT stream_revision, event_type, global_position, transaction_id::text FROM events WHERE stream_id = $1 ORDER BY stream_revision',
        [stream],
      );
      expect(recorded.rows.map((row) => [Number(row.stream_revision), row.event_type])).toEqual([
        [0, 'Happened'],
        [1, 'X'],
        [2, 'Y'],
        [3, 'Z'],
      ]);
      const positions = recorded.rows.slice(1).map((row) => BigInt(row.global_position));
      expect([...positions].sort((a, b) => (a < b ? -1 : 1))).toEqual(positions);
      const last = recorded.rows[3];
      expect(results[index]).toEqual({ nextRevision: 3n, position: { commit: BigInt(last?.transaction_id ?? ''), prepare: BigInt(last?.global_position ?? '') }, written: true });
    }
    const heads = await database.pool.query<{ revision: string }>('SELECT revision FROM event_streams WHERE stream_id = ANY($1)', [streams]);
    expect(heads.rows.map((row) => row.revision)).toEqual(streams.map(() => '3'));
  });

  it('decides each append of a batch on its own: wrong revision, idempotent retry, id used elsewhere, success', async () => {
    const existing = `group-${randomUUID()}`;
    const other = `group-${randomUUID()}`;
    const first = event('First');
    const usedElsewhere = event('UsedElsewhere');
    await withStore(1, async (store) => {
      await store.append(existing, [first], { expectedRevision: 'no_stream' });
      await store.append(other, [usedElsewhere], { expectedRevision: 'no_stream' });
    });
    const fresh = Array.from({ length: 5 }, () => `group-${randomUUID()}`);

    const outcomes = await withStore(1, async (store) => {
      const blocker = store.append(`group-${randomUUID()}`, [event()], { expectedRevision: 'any' });
      // These queue behind the blocker and go as one batch, in this order.
      const batch = [
        store.append(existing, [event()], { expectedRevision: 5n }),
        store.append(existing, [first], { expectedRevision: 'no_stream' }),
        // Exact and new here, so it passes the fast path's check and fails on the unique index,
        // which rolls the whole batch back; every append is then retried alone.
        store.append(existing, [usedElsewhere], { expectedRevision: 0n }),
        ...fresh.map((stream) => store.append(stream, [event()], { expectedRevision: 'no_stream' })),
      ];
      await blocker;
      return settle(batch);
    });

    const [wrong, retry, conflict, ...successes] = outcomes;
    expect(wrong).toMatchObject({ status: 'rejected', reason: expect.any(WrongExpectedRevisionError) });
    expect(wrong?.status === 'rejected' && (wrong.reason as WrongExpectedRevisionError).actual).toBe(0n);
    expect(retry).toMatchObject({ status: 'fulfilled', value: { nextRevision: 0n } });
    expect(conflict).toMatchObject({ status: 'rejected', reason: expect.any(EventIdConflictError) });
    for (const success of successes) expect(success).toMatchObject({ status: 'fulfilled', value: { nextRevision: 0n } });

    const counts = await database.pool.query<{ stream_id: string; count: string }>(
      'SELECT stream_id, count(*) AS count FROM events WHERE stream_id = ANY($1) GROUP BY stream_id',
      [[existing, other, ...fresh]],
    );
    expect(Object.fromEntries(counts.rows.map((row) => [row.stream_id, Number(row.count)]))).toEqual(
      Object.fromEntries([existing, other, ...fresh].map((stream) => [stream, 1])),
    );
  });

  it('answers EventIdConflictError when an append retried alone loses a race for its event id (the store translates the unique violation)', async () => {
    // A batch fails as a whole on one append's id used elsewhere; the other append, retried alone,
    // passes its check (the id is written by a transaction not yet committed), waits on the unique
    // index, and fails on it when that transaction commits. Only the store's own translation of the
    // unique violation makes that an EventIdConflictError rather than a database error.
    const [ours, existing, other, theirs] = [`group-${randomUUID()}`, `group-${randomUUID()}`, `group-${randomUUID()}`, `group-${randomUUID()}`];
    const usedElsewhere = event('UsedElsewhere');
    const raced = event('Raced');
    await withStore(1, async (store) => {
      await store.append(ours, [event()], { expectedRevision: 'no_stream' });
      await store.append(existing, [event()], { expectedRevision: 'no_stream' });
      await store.append(other, [usedElsewhere], { expectedRevision: 'no_stream' });
    });
    const racer = await database.pool.connect();
    try {
      await racer.query('BEGIN');
      await racer.query(`SELECT * FROM append_to_stream($1, 'any', NULL, $2::uuid[], $3::text[], $4::text[], $5::text[])`, [theirs, [raced.id], [raced.type], ['{}'], ['{}']]);
      const { outcomes, retriedAlone } = await withStore(1, async (store) => {
        const blocker = store.append(`group-${randomUUID()}`, [event()], { expectedRevision: 'any' });
        // Queued behind the blocker, they go as one batch, in this order: the first fails it at once.
        const batch = settle([store.append(existing, [usedElsewhere], { expectedRevision: 0n }), store.append(ours, [raced], { expectedRevision: 0n })]);
        await blocker;
        // The retry of `ours` waits on the racer's uncommitted id: commit it only then.
        await untilASessionWaitsOnALock(database.pool);
        await racer.query('COMMIT');
        return { outcomes: await batch, retriedAlone: store.groupCommitStats().retriedAlone };
      });
      const [conflict, lost] = outcomes;
      expect(conflict).toMatchObject({ status: 'rejected', reason: expect.any(EventIdConflictError) });
      expect(lost).toMatchObject({ status: 'rejected', reason: expect.any(EventIdConflictError) });
      expect(lost?.status === 'rejected' && (lost.reason as EventIdConflictError).streamId).toBe(ours);
      expect(retriedAlone).toBe(2);
    } finally {
      await racer.query('ROLLBACK').catch(() => undefined);
      racer.release();
    }
    const counts = await database.pool.query<{ stream_id: string; count: string }>('SELECT stream_id, count(*) AS count FROM events WHERE stream_id = ANY($1) GROUP BY stream_id', [[ours, existing, theirs]]);
    expect(Object.fromEntries(counts.rows.map((row) => [row.stream_id, Number(row.count)]))).toEqual({ [ours]: 1, [existing]: 1, [theirs]: 1 });
  });

  it('applies appends to one stream within a batch in arrival order', async () => {
    const stream = `group-${randomUUID()}`;
    const results = await withStore(1, async (store) => {
      const blocker = store.append(`group-${randomUUID()}`, [event()], { expectedRevision: 'any' });
      const batch = [
        store.append(stream, [event('A')], { expectedRevision: 'no_stream' }),
        store.append(stream, [event('B'), event('C')], { expectedRevision: 0n }),
        store.append(stream, [event('D')], { expectedRevision: 2n }),
        store.append(stream, [event('E')], { expectedRevision: 'stream_exists' }),
      ];
      await blocker;
      return Promise.all(batch);
    });
    expect(results.map((result: AppendResult) => result.nextRevision)).toEqual([0n, 2n, 3n, 4n]);
    expect(new Set(results.map((result) => result.position.commit)).size).toBe(1);
    const types = await database.pool.query<{ event_type: string }>('SELECT event_type FROM events WHERE stream_id = $1 ORDER BY stream_revision', [stream]);
    expect(types.rows.map((row) => row.event_type)).toEqual(['A', 'B', 'C', 'D', 'E']);
  });

  it('loses and duplicates nothing when 400 appends race over 5 streams in overlapping batches', async () => {
    const streams = Array.from({ length: 5 }, () => `group-${randomUUID()}`);
    // Two stores stand for two processes: their batches lock the same rows, and must not deadlock.
    const race = (maxInFlight: number, streamOf: (index: number) => string) =>
      withStore(maxInFlight, async (store) => {
        await Promise.all(Array.from({ length: 200 }, (_, index) => store.append(streamOf(index), [event('N', { index })], { expectedRevision: 'any' })));
        return store.groupCommitStats();
      });
    const stats = await Promise.all([race(2, (index) => streams[index % 5] ?? ''), race(3, (index) => streams[4 - (index % 5)] ?? '')]);
    // A deadlock between the two would still end right (its batch is retried append by append), so
    // check that no batch failed: locks are taken in one order.
    expect(stats.map((stat) => stat.retriedAlone)).toEqual([0, 0]);
    expect(stats.map((stat) => stat.appends)).toEqual([200, 200]);
    for (const stream of streams) {
      const rows = await database.pool.query<{ stream_revision: string }>('SELECT stream_revision FROM events WHERE stream_id = $1 ORDER BY stream_revision', [stream]);
      expect(rows.rows.map((row) => Number(row.stream_revision))).toEqual(Array.from({ length: 80 }, (_, index) => index));
      const head = await database.pool.query<{ revision: string }>('SELECT revision FROM event_streams WHERE stream_id = $1', [stream]);
      expect(head.rows[0]?.revision).toBe('79');
    }
    expect(await transactionsOf(streams)).toBeLessThan(400);
  });

  it('refuses stream_exists on a stream that has metadata but no events, inside a batch too', async () => {
    const stream = `group-${randomUUID()}`;
    const other = `group-${randomUUID()}`;
    await withStore(1, (store) => store.append(other, [event()], { expectedRevision: 'no_stream' }));
    await withStore(1, async (store) => {
      await store.setStreamMetadata(stream, { note: 'no events yet' });
      const blocker = store.append(`group-${randomUUID()}`, [event()], { expectedRevision: 'any' });
      // Two queued behind the blocker, both streams there: one batch of two, whose set-based check
      // refuses it (revision -1) and whose append-by-append path refuses it again.
      const refused = store.append(stream, [event()], { expectedRevision: 'stream_exists' });
      const companion = store.append(other, [event()], { expectedRevision: 0n });
      await blocker;
      await expect(refused).rejects.toMatchObject({ actual: -1n });
      await companion;
      expect(store.groupCommitStats()).toMatchObject({ batches: 2, appends: 3, retriedAlone: 0 });
    });
  });

  describe('the append deadline', () => {
    const DEADLINE_MS = 500;

    it('fails an append blocked by a lock held elsewhere within the deadline, applies nothing, and lets the appends behind it through', async () => {
      const stream = `group-${randomUUID()}`;
      const other = `group-${randomUUID()}`;
      const store = new PostgresEventStore(database.pool, { connectionString: database.url, groupCommit: { deadlineMs: DEADLINE_MS } });
      const blocker = await database.pool.connect();
      try {
        await store.append(stream, [event()], { expectedRevision: 'no_stream' });
        await blocker.query('BEGIN');
        await blocker.query('SELECT 1 FROM event_streams WHERE stream_id = $1 FOR UPDATE', [stream]);
        const startedAt = Date.now();
        const blocked = store.append(stream, [event()], { expectedRevision: 0n });
        // Arrives while the blocked batch is in flight: it waits for that batch, not for the lock.
        const behind = store.append(other, [event()], { expectedRevision: 'no_stream' });
        const failure: unknown = await blocked.catch((error: unknown) => error);
        const failedAfterMs = Date.now() - startedAt;
        expect(failure).toBeInstanceOf(AppendDeadlineExceededError);
        expect(failure).toMatchObject({ code: 'APPEND_DEADLINE_EXCEEDED', streamId: stream, deadlineMs: DEADLINE_MS, applied: 'no' });
        expect(failedAfterMs).toBeGreaterThanOrEqual(DEADLINE_MS - 50);
        expect(failedAfterMs).toBeLessThan(DEADLINE_MS + 1_000);
        await expect(behind).resolves.toMatchObject({ nextRevision: 0n });
      } finally {
        await blocker.query('ROLLBACK');
        blocker.release();
      }
      // Nothing of the cancelled append committed: revision 0 is still the head.
      await expect(store.append(stream, [event()], { expectedRevision: 0n })).resolves.toMatchObject({ nextRevision: 1n });
      await store.close();
    });

    it('keeps one deadline for the appends of a batch that failed for another reason, from when it was sent: one retried alone past it fails as a deadline, one not yet tried then is not tried', async () => {
      const options: GroupCommitOptions = { ...DEFAULT_GROUP_COMMIT_OPTIONS, maxInFlight: 1, deadlineMs: DEADLINE_MS };
      const appends = appendPool(database.url, options, () => undefined);
      const blocker = await database.pool.connect();
      const held = `group-${randomUUID()}`;
      const other = `group-${randomUUID()}`;
      const conflicting = `group-${randomUUID()}`;
      const usedElsewhere = event('UsedElsewhere');
      const seed = new PostgresEventStore(database.pool, { connectionString: database.url });
      await seed.append(held, [event()], { expectedRevision: 'no_stream' });
      await seed.append(other, [usedElsewhere], { expectedRevision: 'no_stream' });
      await seed.append(conflicting, [event()], { expectedRevision: 'no_stream' });
      await seed.close();
      // The batch fails on an event id used elsewhere; before its failure is seen, another session locks
      // `held`, so the retry of `held`'s append alone waits on that lock until its statement times out.
      let locked = false;
      const pool = {
        query: async (config: QueryConfig) => {
          try {
            return await appends.query(config);
          } catch (error) {
            if (!locked) {
              locked = true;
              await blocker.query('BEGIN');
              await blocker.query('SELECT 1 FROM event_streams WHERE stream_id = $1 FOR UPDATE', [held]);
            }
            throw error;
          }
        },
      } as unknown as Pool;
      const groupCommit = new GroupCommit(pool, options);
      // The connection exists before the timed batch is sent.
      await appends.query('SELECT 1');
      try {
        const fresh = (stream: string) => groupCommit.append({ streamId: stream, kind: 'no_stream', revision: null, events: [event()] });
        const first = fresh(`group-${randomUUID()}`);
        // These three queue behind the first and go as one batch, which fails on the unique index: an
        // exact append passes the fast path's check with an id used elsewhere.
        const conflict = groupCommit.append({ streamId: conflicting, kind: 'exact', revision: '0', events: [usedElsewhere] });
        const blocked = groupCommit.append({ streamId: held, kind: 'exact', revision: '0', events: [event()] });
        const after = fresh(`group-${randomUUID()}`);
        await first;
        expect(await conflict).toMatchObject({ status: 'id_conflict' });
        // Tried alone: its statement timed out on the lock (57014), reported as the deadline it is.
        expect(await blocked.catch((error: unknown) => error)).toMatchObject({ name: 'AppendDeadlineExceededError', streamId: held, applied: 'no', cause: { code: '57014' } });
        expect(await after.catch((error: unknown) => error)).toMatchObject({ name: 'AppendDeadlineExceededError', applied: 'no' });
        expect(groupCommit.stats()).toMatchObject({ batches: 2, retriedAlone: 3 });
      } finally {
        await blocker.query('ROLLBACK');
        blocker.release();
        await appends.end();
      }
    });

    it('reports an append whose batch committed before its connection was lost, and whose retry found no database, as unknown: not as a database error, which reads as nothing written', async () => {
      const options: GroupCommitOptions = { ...DEFAULT_GROUP_COMMIT_OPTIONS, maxInFlight: 1, deadlineMs: DEADLINE_MS };
      const appends = appendPool(database.url, options, () => undefined);
      const stream = `group-${randomUUID()}`;
      let calls = 0;
      // The batch commits, then its answer is lost with the connection; the retry alone finds the server gone.
      const pool = {
        query: async (config: QueryConfig) => {
          calls += 1;
          if (calls > 1) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
          await appends.query(config);
          throw new Error('Connection terminated unexpectedly');
        },
      } as unknown as Pool;
      const groupCommit = new GroupCommit(pool, options);
      try {
        const failure: unknown = await groupCommit.append({ streamId: stream, kind: 'no_stream', revision: null, events: [event()] }).catch((error: unknown) => error);
        expect(failure).toBeInstanceOf(AppendDeadlineExceededError);
        expect(failure).toMatchObject({ streamId: stream, applied: 'unknown', cause: { code: 'ECONNREFUSED' } });
        expect(calls).toBe(2);
        // It had committed: unknown was the truth, and "not applied" would have been a lie.
        const committed = await database.pool.query<{ count: string }>('SELECT count(*) AS count FROM events WHERE stream_id = $1', [stream]);
        expect(committed.rows[0]?.count).toBe('1');
      } finally {
        await appends.end();
      }
    });

    it('passes the database error on, as nothing written, when no connection could be opened for the batch nor for its retry', async () => {
      const options: GroupCommitOptions = { ...DEFAULT_GROUP_COMMIT_OPTIONS, maxInFlight: 1, deadlineMs: DEADLINE_MS };
      const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
      let calls = 0;
      const pool = {
        query: () => {
          calls += 1;
          return Promise.reject(refused);
        },
      } as unknown as Pool;
      const groupCommit = new GroupCommit(pool, options);
      const failure: unknown = await groupCommit.append({ streamId: `group-${randomUUID()}`, kind: 'no_stream', revision: null, events: [event()] }).catch((error: unknown) => error);
      expect(failure).toBe(refused);
      expect(calls).toBe(2);
    });

    it('reports a retry that was sent and lost as unknown, even when its batch was refused by the server (rolled back)', async () => {
      const options: GroupCommitOptions = { ...DEFAULT_GROUP_COMMIT_OPTIONS, maxInFlight: 1, deadlineMs: DEADLINE_MS };
      let calls = 0;
      const pool = {
        query: () => {
          calls += 1;
          return Promise.reject(calls === 1 ? Object.assign(new Error('deadlock detected'), { code: '40P01', severity: 'ERROR' }) : Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
        },
      } as unknown as Pool;
      const groupCommit = new GroupCommit(pool, options);
      const failure: unknown = await groupCommit.append({ streamId: `group-${randomUUID()}`, kind: 'no_stream', revision: null, events: [event()] }).catch((error: unknown) => error);
      expect(failure).toMatchObject({ name: 'AppendDeadlineExceededError', applied: 'unknown', cause: { code: 'ECONNRESET' } });
    });

    it('fails an append that cannot get a connection within the deadline as not applied, once, and appends when one can be had', async () => {
      const proxy = await frozenableProxy(new URL(database.url));
      const store = new PostgresEventStore(database.pool, { connectionString: proxy.url, groupCommit: { deadlineMs: DEADLINE_MS } });
      try {
        const stream = `group-${randomUUID()}`;
        // No append connection yet, and none can be opened: the server never hears of the append.
        proxy.freeze();
        const failure: unknown = await store.append(stream, [event()], { expectedRevision: 'no_stream' }).catch((error: unknown) => error);
        expect(failure).toBeInstanceOf(AppendDeadlineExceededError);
        expect(failure).toMatchObject({ code: 'APPEND_DEADLINE_EXCEEDED', streamId: stream, deadlineMs: DEADLINE_MS, applied: 'no' });
        // Failed as a deadline, not retried alone (which would wait for a connection again).
        expect(store.groupCommitStats().retriedAlone).toBe(0);
        proxy.thaw();
        await expect(store.append(stream, [event()], { expectedRevision: 'no_stream' })).resolves.toMatchObject({ nextRevision: 0n });
      } finally {
        await store.close();
        await proxy.close();
      }
    });

    it('gives up on a connection that stops answering, drops it, and appends on a new one', async () => {
      const proxy = await frozenableProxy(new URL(database.url));
      const store = new PostgresEventStore(database.pool, { connectionString: proxy.url, groupCommit: { deadlineMs: DEADLINE_MS } });
      try {
        const stream = `group-${randomUUID()}`;
        await store.append(stream, [event()], { expectedRevision: 'no_stream' });
        proxy.freeze();
        const startedAt = Date.now();
        const failure: unknown = await store.append(stream, [event()], { expectedRevision: 0n }).catch((error: unknown) => error);
        // The server never saw the statement, so only the client's own timeout can end the wait.
        expect(failure).toMatchObject({ code: 'APPEND_DEADLINE_EXCEEDED', applied: 'unknown' });
        expect(Date.now() - startedAt).toBeLessThan(DEADLINE_MS + 2_000);
        proxy.thaw();
        await expect(store.append(stream, [event()], { expectedRevision: 0n })).resolves.toMatchObject({ nextRevision: 1n });
      } finally {
        await store.close();
        await proxy.close();
      }
    });
  });
  /** Appends `sizes.length` appends (of that many events each) queued behind a blocker; returns the transactions each landed in. */
  async function batchesOf(sizes: readonly number[], limits: Partial<GroupCommitOptions>): Promise<{ readonly transactions: number[]; readonly batches: number }> {
    const streams = sizes.map(() => `group-${randomUUID()}`);
    const stats = await withStore(
      1,
      async (store) => {
        const blocker = store.append(`group-${randomUUID()}`, [event()], { expectedRevision: 'any' });
        const queued = streams.map((stream, index) => store.append(stream, Array.from({ length: sizes[index] ?? 0 }, () => event()), { expectedRevision: 'no_stream' }));
        await blocker;
        await Promise.all(queued);
        return store.groupCommitStats();
      },
      limits,
    );
    const rows = await database.pool.query<{ stream_id: string; transaction_id: string }>('SELECT DISTINCT stream_id, transaction_id::text FROM events WHERE stream_id = ANY($1)', [streams]);
    const transactionOf = new Map(rows.rows.map((row) => [row.stream_id, row.transaction_id]));
    // Numbers the transactions in order of first use, so that the grouping reads as [0, 0, 1, ...].
    const order = [...new Set(streams.map((stream) => transactionOf.get(stream)))];
    return { transactions: streams.map((stream) => order.indexOf(transactionOf.get(stream))), batches: stats.batches - 1 };
  }

  it('puts at most maxAppends appends in one batch, exactly maxAppends included', async () => {
    expect(await batchesOf([1, 1, 1, 1, 1, 1, 1], { maxAppends: 3 })).toEqual({ transactions: [0, 0, 0, 1, 1, 1, 2], batches: 3 });
  });

  it('puts at most maxEvents events in one batch, exactly maxEvents included', async () => {
    expect(await batchesOf([2, 2, 1, 3, 2], { maxEvents: 5 })).toEqual({ transactions: [0, 0, 0, 1, 1], batches: 2 });
  });

  it('sends an append larger than maxEvents alone rather than refuse it', async () => {
    expect(await batchesOf([1, 7, 1], { maxEvents: 5 })).toEqual({ transactions: [0, 1, 2], batches: 3 });
  });

  describe('a held stream (holdStream: a per-account rebuild, a verification)', () => {
    async function appendedTo(stream: string): Promise<number> {
      const result = await database.pool.query<{ count: string }>('SELECT count(*) AS count FROM events WHERE stream_id = $1', [stream]);
      return Number(result.rows[0]?.count);
    }

    /** A pool whose sessions ask for busy answers, as GroupCommit's append connections do. */
    let asking: pg.Pool;

    beforeAll(() => {
      asking = new pg.Pool({
        connectionString: database.url,
        max: 2,
        // As appendPool's: pg-pool awaits it.
        // eslint-disable-next-line @typescript-eslint/no-misused-promises
        onConnect: async (client) => {
          await client.query('SET token_ledger.busy_appends = on');
        },
      });
      asking.on('error', () => undefined);
    });

    afterAll(async () => {
      await asking.end();
    });

    async function holding<T>(store: PostgresEventStore, stream: string, work: (holder: Client) => Promise<T>): Promise<T> {
      const holder = new Client({ connectionString: database.url });
      await holder.connect();
      try {
        await holder.query('BEGIN');
        await store.postgres.holdStream(holder, stream);
        return await work(holder);
      } finally {
        await holder.end();
      }
    }

    it('answers each append function busy for a held stream, writing nothing, on a session that asked (one that did not waits, as an older version did), and the others of a batch append in its transaction', async () => {
      const held = `group-${randomUUID()}`;
      const free = `group-${randomUUID()}`;
      await withStore(1, async (store) => {
        await store.append(held, [event()], { expectedRevision: 'no_stream' });
        await store.append(free, [event()], { expectedRevision: 'no_stream' });
        await holding(store, held, async () => {
          const one = (name: string, stream: string) =>
            asking.query<{ status: string }>(`SELECT status FROM ${name}($1, 'exact', 0, $2::uuid[], ARRAY['X'], ARRAY['{}'], ARRAY['{}'])`, [stream, [randomUUID()]]);
          expect((await one('append_one', held)).rows).toEqual([{ status: 'busy' }]);
          expect((await one('append_to_stream', held)).rows).toEqual([{ status: 'busy' }]);
          // A new stream can be held too: its append would create it.
          const unborn = `group-${randomUUID()}`;
          await holding(store, unborn, async () => {
            const created = await asking.query<{ status: string }>(
              `SELECT status FROM append_to_stream($1, 'no_stream', NULL, $2::uuid[], ARRAY['X'], ARRAY['{}'], ARRAY['{}'])`,
              [unborn, [randomUUID()]],
            );
            expect(created.rows).toEqual([{ status: 'busy' }]);
          });
          const batch = await asking.query<{ request: number; status: string; next_revision: string | null }>(
            `SELECT request, status, next_revision::text FROM append_to_streams(ARRAY[$1, $2, $3], ARRAY['exact', 'exact', 'no_stream'], ARRAY[0, 0, NULL]::bigint[],
                    ARRAY[1, 1, 1], $4::uuid[], ARRAY['X', 'X', 'X'], ARRAY['{}', '{}', '{}'], ARRAY['{}', '{}', '{}']) ORDER BY request`,
            [free, held, `group-${randomUUID()}`, [randomUUID(), randomUUID(), randomUUID()]],
          );
          expect(batch.rows).toEqual([
            { request: 1, status: 'appended', next_revision: '1' },
            { request: 2, status: 'busy', next_revision: null },
            { request: 3, status: 'appended', next_revision: '0' },
          ]);
          expect(await appendedTo(held)).toBe(1);
          expect(await appendedTo(free)).toBe(2);
          // The held stream's row was neither moved nor waited for.
          const head = await database.pool.query<{ revision: string }>('SELECT revision::text FROM event_streams WHERE stream_id = $1', [held]);
          expect(head.rows).toEqual([{ revision: '0' }]);
          // A session that did not ask (a process of an older version) waits on the row instead, as
          // before migration 138, in each function, and never sees the status it would not know.
          const older = await database.pool.connect();
          try {
            await older.query('SET statement_timeout = 300');
            const calls = [
              () => older.query(`SELECT status FROM append_one($1, 'exact', 0, $2::uuid[], ARRAY['X'], ARRAY['{}'], ARRAY['{}'])`, [held, [randomUUID()]]),
              () => older.query(`SELECT status FROM append_to_stream($1, 'exact', 0, $2::uuid[], ARRAY['X'], ARRAY['{}'], ARRAY['{}'])`, [held, [randomUUID()]]),
              () =>
                older.query(
                  `SELECT status FROM append_to_streams(ARRAY[$1, $2], ARRAY['exact', 'exact'], ARRAY[1, 0]::bigint[], ARRAY[1, 1], $3::uuid[], ARRAY['X', 'X'],
                          ARRAY['{}', '{}'], ARRAY['{}', '{}'])`,
                  [free, held, [randomUUID(), randomUUID()]],
                ),
            ];
            for (const call of calls) expect(await call().catch((error: unknown) => error)).toMatchObject({ code: '57014' });
          } finally {
            await older.query('RESET statement_timeout');
            older.release();
          }
        });
      });
    });

    it("does not make the appends behind a held stream's wait: they commit while it is held, and it appends once, after the hold", async () => {
      const held = `group-${randomUUID()}`;
      const others = Array.from({ length: 12 }, () => `group-${randomUUID()}`);
      await withStore(1, async (store) => {
        await store.append(held, [event()], { expectedRevision: 'no_stream' });
        let heldAppended = false;
        await holding(store, held, async (holder) => {
          // Alone first (append_one), then again and again in the batches of the others (append_to_streams).
          const waiting = store.append(held, [event()], { expectedRevision: 0n }).then((result) => {
            heldAppended = true;
            return result;
          });
          for (const stream of others) await store.append(stream, [event()], { expectedRevision: 'no_stream' });
          await expect(Promise.all(others.map((stream) => store.append(stream, [event(), event()], { expectedRevision: 0n })))).resolves.toHaveLength(others.length);
          // Held long enough for several tries.
          await new Promise((resolve) => setTimeout(resolve, 150));
          expect(heldAppended).toBe(false);
          expect(store.groupCommitStats().busy).toBeGreaterThanOrEqual(2);
          await holder.query('COMMIT');
          await expect(waiting).resolves.toMatchObject({ nextRevision: 1n, written: true });
        });
      });
      expect(await appendedTo(held)).toBe(2);
      for (const stream of others) expect(await appendedTo(stream)).toBe(3);
    });

    it('fails a held append as not applied when the hold outlasts its deadline; it appends when sent again after the hold', async () => {
      const held = `group-${randomUUID()}`;
      const DEADLINE_MS = 400;
      await withStore(
        1,
        async (store) => {
          await store.append(held, [event()], { expectedRevision: 'no_stream' });
          const retried = event();
          await holding(store, held, async () => {
            const startedAt = performance.now();
            const failure: unknown = await store.append(held, [retried], { expectedRevision: 0n }).catch((error: unknown) => error);
            const failedAfterMs = performance.now() - startedAt;
            expect(failure).toBeInstanceOf(AppendDeadlineExceededError);
            expect(failure).toMatchObject({ streamId: held, deadlineMs: DEADLINE_MS, applied: 'no', cause: { message: expect.stringContaining('was held') } });
            expect(failedAfterMs).toBeGreaterThanOrEqual(DEADLINE_MS - 2 * BUSY_RETRY_MS);
            expect(failedAfterMs).toBeLessThan(DEADLINE_MS + 500);
            expect(await appendedTo(held)).toBe(1);
          });
          // The caller's retry, with the same event id, after the hold.
          await expect(store.append(held, [retried], { expectedRevision: 0n })).resolves.toMatchObject({ nextRevision: 1n });
        },
        { deadlineMs: DEADLINE_MS },
      );
      expect(await appendedTo(held)).toBe(2);
    });

    it('reports a held append whose first try may have committed (its connection lost) as unknown at the deadline, not as not applied', async () => {
      // Long enough for two busy answers on a loaded machine (each retry waits BUSY_RETRY_MS and a round trip).
      const DEADLINE_MS = 1_000;
      const options: GroupCommitOptions = { ...DEFAULT_GROUP_COMMIT_OPTIONS, maxInFlight: 1, deadlineMs: DEADLINE_MS };
      const appends = appendPool(database.url, options, () => undefined);
      const held = `group-${randomUUID()}`;
      await withStore(1, async (store) => {
        await store.append(held, [event()], { expectedRevision: 'no_stream' });
        let failed = false;
        // The first statement fails as a lost connection does: a Node system error, no severity.
        const pool = {
          query: (config: QueryConfig) => {
            if (failed) return appends.query(config);
            failed = true;
            return Promise.reject(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
          },
        } as unknown as Pool;
        const groupCommit = new GroupCommit(pool, options);
        // The connection exists before the timed append: opening it on a loaded host could take much of the deadline.
        await appends.query('SELECT 1');
        try {
          await holding(store, held, async () => {
            const failure: unknown = await groupCommit.append({ streamId: held, kind: 'exact', revision: '0', events: [event()] }).catch((error: unknown) => error);
            expect(failure).toBeInstanceOf(AppendDeadlineExceededError);
            expect(failure).toMatchObject({ streamId: held, applied: 'unknown', cause: { message: expect.stringContaining('was held') } });
            expect(groupCommit.stats()).toMatchObject({ retriedAlone: 1, busy: expect.any(Number) });
            expect(groupCommit.stats().busy).toBeGreaterThanOrEqual(2);
          });
        } finally {
          await appends.end();
        }
      });
    });

    it('fails the held appends waiting to be sent again when the store closes, as not applied, and sends nothing after', async () => {
      const held = `group-${randomUUID()}`;
      const store = new PostgresEventStore(database.pool, { connectionString: database.url, groupCommit: { maxInFlight: 1 } });
      await store.append(held, [event()], { expectedRevision: 'no_stream' });
      await holding(store, held, async () => {
        const waiting = store.append(held, [event()], { expectedRevision: 0n }).catch((error: unknown) => error);
        while (store.groupCommitStats().busy === 0) await new Promise((resolve) => setTimeout(resolve, 5));
        const batches = store.groupCommitStats().batches;
        await store.close();
        expect(await waiting).toMatchObject({ name: 'AppendDeadlineExceededError', streamId: held, applied: 'no', cause: { message: expect.stringContaining('closed while the append waited to be sent') } });
        await new Promise((resolve) => setTimeout(resolve, 3 * BUSY_RETRY_MS));
        expect(store.groupCommitStats()).toMatchObject({ batches, retriedAlone: 0 });
      });
      expect(await appendedTo(held)).toBe(1);
    });

    it('fails, when the store closes, the appends queued behind a batch in flight and a busy answer that batch brings after, and refuses appends after it', async () => {
      const [held, blocked, first] = [`group-${randomUUID()}`, `group-${randomUUID()}`, `group-${randomUUID()}`];
      const store = new PostgresEventStore(database.pool, { connectionString: database.url, groupCommit: { maxInFlight: 1 } });
      for (const stream of [held, blocked]) await store.append(stream, [event()], { expectedRevision: 'no_stream' });
      const blocker = await database.pool.connect();
      try {
        await holding(store, held, async () => {
          await blocker.query('BEGIN');
          await blocker.query('SELECT 1 FROM event_streams WHERE stream_id = $1 FOR UPDATE', [blocked]);
          // `first` takes the slot; the two behind it go together, `held` answered busy within the
          // statement, which then waits on `blocked`'s row until the store is closing.
          const sent = [first, blocked, held].map((stream) =>
            store.append(stream, [event()], { expectedRevision: stream === first ? 'no_stream' : 0n }).catch((error: unknown) => error),
          );
          await untilASessionWaitsOnALock(database.pool);
          // Queued behind the batch in flight: never sent.
          const queued = store.append(`group-${randomUUID()}`, [event()], { expectedRevision: 'no_stream' }).catch((error: unknown) => error);
          const closing = store.close();
          expect(await store.append(`group-${randomUUID()}`, [event()], { expectedRevision: 'no_stream' }).catch((error: unknown) => error)).toMatchObject({
            message: expect.stringContaining('the event store is closed'),
          });
          await blocker.query('ROLLBACK');
          await closing;
          const [, appended, refused] = await Promise.all(sent);
          expect(appended).toMatchObject({ nextRevision: 1n });
          expect(refused).toMatchObject({ name: 'AppendDeadlineExceededError', streamId: held, applied: 'no', cause: { message: expect.stringContaining('was held when the event store closed') } });
          expect(await queued).toMatchObject({ name: 'AppendDeadlineExceededError', applied: 'no', cause: { message: expect.stringContaining('closed while the append waited to be sent') } });
          expect(store.groupCommitStats()).toMatchObject({ batches: 4, retriedAlone: 0, busy: 1 });
        });
      } finally {
        blocker.release();
      }
      expect(await appendedTo(held)).toBe(1);
    });

    it('lets a holder in only after the appends that tried the stream before it have committed, refusing those that come while it waits, and sees their events', async () => {
      const held = `group-${randomUUID()}`;
      const blocker = await database.pool.connect();
      await withStore(1, async (store) => {
        await store.append(held, [event()], { expectedRevision: 'no_stream' });
        // An append in flight: it has the hold lock shared and waits on the stream's row.
        await blocker.query('BEGIN');
        await blocker.query('SELECT 1 FROM event_streams WHERE stream_id = $1 FOR UPDATE', [held]);
        const inFlight = store.append(held, [event()], { expectedRevision: 0n });
        await untilASessionWaitsOnALock(database.pool);
        const holder = new Client({ connectionString: database.url });
        await holder.connect();
        try {
          await holder.query('BEGIN');
          let holderIn = false;
          const hold = store.postgres.holdStream(holder, held).then(() => {
            holderIn = true;
          });
          await new Promise((resolve) => setTimeout(resolve, 100));
          expect(holderIn).toBe(false);
          // A later append is refused while the holder waits: a stream of appends cannot starve it.
          const later = await asking.query<{ status: string }>(
            `SELECT status FROM append_one($1, 'any', NULL, $2::uuid[], ARRAY['X'], ARRAY['{}'], ARRAY['{}'])`,
            [held, [randomUUID()]],
          );
          expect(later.rows).toEqual([{ status: 'busy' }]);
          await blocker.query('ROLLBACK');
          await expect(inFlight).resolves.toMatchObject({ nextRevision: 1n });
          await hold;
          const seen = await holder.query<{ count: string }>('SELECT count(*) AS count FROM events WHERE stream_id = $1', [held]);
          expect(Number(seen.rows[0]?.count)).toBe(2);
          await holder.query('ROLLBACK');
        } finally {
          await holder.end();
          blocker.release();
        }
      });
    });
  });

  it('answers an event id another transaction was writing at the same moment as a conflict, not a database error', async () => {
    const holder = new Client({ connectionString: database.url });
    await holder.connect();
    try {
      const usedElsewhere = event('UsedElsewhere');
      const heldOpen = event('HeldOpen');
      const elsewhere = `group-${randomUUID()}`;
      const existing = `group-${randomUUID()}`;
      await withStore(1, async (store) => {
        await store.append(elsewhere, [usedElsewhere], { expectedRevision: 'no_stream' });
        await store.append(existing, [event()], { expectedRevision: 'no_stream' });
      });
      // Another transaction writes `heldOpen` and has not committed yet.
      await holder.query('BEGIN');
      await holder.query(`SELECT * FROM append_to_stream($1, 'no_stream', NULL, $2::uuid[], $3::text[], $4::text[], $5::text[])`, [
        `group-${randomUUID()}`,
        [heldOpen.id],
        [heldOpen.type],
        ['{}'],
        ['{}'],
      ]);
      const outcomes = await withStore(1, async (store) => {
        const blocker = store.append(`group-${randomUUID()}`, [event()], { expectedRevision: 'any' });
        // One batch. The first append fails it at once on the unique index (exact and new, it passes
        // the batch's own check; its id is committed elsewhere). Retried alone, the second then waits
        // on the open transaction's id, which commits first: its insert fails on the index too.
        const conflicting = store.append(existing, [usedElsewhere], { expectedRevision: 0n });
        const racing = store.append(`group-${randomUUID()}`, [heldOpen], { expectedRevision: 'no_stream' });
        await blocker;
        await untilASessionWaitsOnALock(database.pool);
        await holder.query('COMMIT');
        return settle([conflicting, racing]);
      });
      expect(outcomes).toEqual([
        { status: 'rejected', reason: expect.any(EventIdConflictError) },
        { status: 'rejected', reason: expect.any(EventIdConflictError) },
      ]);
    } finally {
      await holder.end();
    }
  });
});
