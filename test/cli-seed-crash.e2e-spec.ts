import { seedHistory } from '@app/testing';
import { tokenAccountStreamId } from '@app/ledger';
import { connect, type Connection } from '../apps/cli/src/database.js';
import { allVisible, cli, cliDatabases } from './support/cli-databases.js';
import type { TestDatabase } from './support/test-database.js';

/**
 * The CLI's `seed` is a write path too: it decides with the real ledger and appends through the
 * service's event store and inline projections. Seeds racing on one account and a seed whose database
 * session is cut inside an append (the CLI runs in-process here, so its session is what can die) must
 * leave exactly the history one uninterrupted seed leaves, with read models that verify.
 */
const { database } = cliDatabases();

/** The events as appended (ids, data, and the metadata holding each one's hash), in stream order. */
async function history(on: TestDatabase): Promise<unknown[]> {
  return (await on.pool.query('SELECT stream_id, stream_revision, event_id, event_type, data, metadata FROM events ORDER BY stream_id, stream_revision')).rows;
}

/** The CLI's own connection (its store appends with the service's inline projections), opened on `on`. */
async function cliConnection(on: TestDatabase): Promise<Connection> {
  const saved = process.env.DATABASE_URL;
  process.env.DATABASE_URL = on.url;
  try {
    return await connect();
  } finally {
    if (saved === undefined) delete process.env.DATABASE_URL;
    else process.env.DATABASE_URL = saved;
  }
}

describe('seed, raced and cut', () => {
  it('four seeds of one account racing with the same seed write its history once between them: the same events as one seed, and the account verifies', async () => {
    const [raced, alone] = [await database(), await database()];
    expect(await cli(alone, 'seed', '--users', '1', '--events', '2000', '--seed', '17')).toEqual({ output: expect.stringMatching(/^seeded 2000 events over 1 accounts \(seed 17\)/), exitCode: 0 });

    const connections = await Promise.all(Array.from({ length: 4 }, () => cliConnection(raced)));
    try {
      // Batches of 10 events: 200 appends each, so the four meet on the stream again and again.
      const seeded = await Promise.all(connections.map(({ store }) => seedHistory(store, { users: 1, events: 2000, seed: 17, eventsPerAppend: 10 })));
      expect(seeded.map((one) => one.eventsDecided)).toEqual([2000, 2000, 2000, 2000]);
      expect(seeded.reduce((sum, one) => sum + one.eventsWritten, 0)).toBe(2000);
      // They did race: more than one of them wrote part of the history.
      expect(seeded.filter((one) => one.eventsWritten > 0).length).toBeGreaterThan(1);
    } finally {
      await Promise.all(connections.map((connection) => connection.close()));
    }

    const events = await history(raced);
    expect(events).toHaveLength(2000);
    // Batches of 10 seal the same chain as batches of 100: each event's hash is of it and the one before.
    expect(events).toEqual(await history(alone));
    await allVisible(raced);
    expect(await cli(raced, 'accounts', 'verify', '--all')).toEqual({ output: '1 accounts verified\nno differences\n', exitCode: 0 });
  });

  it('a seed whose session is cut inside an append writes nothing of that append and fails; the same seed again writes the rest, once', async () => {
    const [cut, alone] = [await database(), await database()];
    expect(await cli(alone, 'seed', '--users', '1', '--events', '1000', '--seed', '23')).toEqual({ output: expect.stringMatching(/^seeded 1000 events over 1 accounts/), exitCode: 0 });
    // The first 300 of the same history, so the account and its balance row exist.
    expect(await cli(cut, 'seed', '--users', '1', '--events', '300', '--seed', '23')).toEqual({ output: expect.stringMatching(/^seeded 300 events over 1 accounts/), exitCode: 0 });
    const [userId] = (await cut.pool.query<{ user_id: string }>('SELECT user_id::text FROM user_tokens')).rows.map((row) => row.user_id);
    expect(userId).toBeDefined();

    // The balance row locked: the next append inserts its events, then waits inside its transaction
    // for the row its inline projection updates, where the test ends its session (and the store's
    // retry's) until the seed gives up.
    const blocker = await cut.pool.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM user_tokens WHERE user_id = $1 FOR UPDATE', [userId]);
      const seeding = cli(cut, 'seed', '--users', '1', '--events', '1000', '--seed', '23');
      let settled = false;
      void seeding.finally(() => {
        settled = true;
      });
      let cuts = 0;
      while (!settled) {
        const ended = await cut.pool.query<{ ended: boolean }>(
          "SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid() AND query LIKE '%append%'",
        );
        cuts += ended.rowCount ?? 0;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const failed = await seeding;
      expect(failed.exitCode).toBe(1);
      expect(failed.output).toMatch(/^error: /m);
      expect(cuts).toBeGreaterThan(0);
    } finally {
      await blocker.query('ROLLBACK');
      blocker.release();
    }
    // Nothing of the cut append: the 300 events of the first seed, and its balance.
    const afterCut = await cut.pool.query<{ count: string; last: string }>('SELECT count(*)::text AS count, max(stream_revision)::text AS last FROM events WHERE stream_id = $1', [tokenAccountStreamId(userId as string)]);
    expect(afterCut.rows[0]).toEqual({ count: '300', last: '299' });

    expect(await cli(cut, 'seed', '--users', '1', '--events', '1000', '--seed', '23')).toEqual({
      output: expect.stringMatching(/^seeded 700 events over 1 accounts \(seed 23\) in \d+\.\d s \(300 more were there already, from the same seed\)\n$/),
      exitCode: 0,
    });
    expect(await history(cut)).toEqual(await history(alone));
    await allVisible(cut);
    expect(await cli(cut, 'accounts', 'verify', '--all')).toEqual({ output: '1 accounts verified\nno differences\n', exitCode: 0 });
  });
});
