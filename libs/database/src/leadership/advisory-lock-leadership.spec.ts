import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { frozenableProxy } from '../../../../test/support/frozenable-proxy.js';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/test-database.js';
import { AdvisoryLockLeadership, LEADERSHIP_LOCK_NAMESPACE, LEADERSHIP_TIMING, type LeadershipEvent, type LeadershipTiming } from './advisory-lock-leadership.js';

let database: TestDatabase;
const started: AdvisoryLockLeadership[] = [];

beforeEach(async () => {
  database = await createTestDatabase();
});

afterEach(async () => {
  // Stops what a failed test left contending, so one failure does not hang the file.
  await Promise.all(started.splice(0).map((leadership) => leadership.stop()));
  await database.drop();
});

/** One worker's work as its contenders run it: who runs it now, and whether two ever ran it at once. */
class Work {
  readonly running = new Set<string>();
  overlaps = 0;

  begin(name: string): void {
    if (this.running.size > 0) this.overlaps += 1;
    this.running.add(name);
  }

  end(name: string): void {
    this.running.delete(name);
  }
}

type Contender = { readonly name: string; readonly leadership: AdvisoryLockLeadership; readonly events: LeadershipEvent[] };

type ContenderOptions = { readonly worker?: string; readonly standDownMs?: number; readonly connectionString?: string; readonly timing?: LeadershipTiming };

function contender(name: string, work: Work, options: ContenderOptions = {}): Contender {
  const events: LeadershipEvent[] = [];
  const leadership = new AdvisoryLockLeadership({
    connectionString: options.connectionString ?? database.url,
    worker: options.worker ?? 'projection:test',
    applicationName: `leadership-spec ${name}`,
    timing: options.timing,
    onEvent: (event) => events.push(event),
    task: {
      lead: () => work.begin(name),
      standDown: async () => {
        await new Promise((resolve) => setTimeout(resolve, options.standDownMs ?? 0));
        work.end(name);
      },
    },
  });
  started.push(leadership);
  return { name, leadership, events };
}

/** The sessions holding the worker's leadership lock, by application name, as PostgreSQL sees them. */
async function holders(worker = 'projection:test'): Promise<{ name: string; pid: number }[]> {
  const result = await database.pool.query<{ application_name: string; pid: number }>(
    `SELECT activity.application_name, locks.pid FROM pg_locks locks JOIN pg_stat_activity activity ON activity.pid = locks.pid
      WHERE locks.locktype = 'advisory' AND locks.granted AND locks.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND locks.classid = hashtext($1)::oid AND locks.objid = hashtext($2)::oid AND locks.objsubid = 2`,
    [LEADERSHIP_LOCK_NAMESPACE, worker],
  );
  return result.rows.map((row) => ({ name: row.application_name.replace('leadership-spec ', ''), pid: row.pid }));
}

async function sessionsNamed(prefix: string): Promise<number> {
  const result = await database.pool.query<{ count: string }>(`SELECT count(*)::text AS count FROM pg_stat_activity WHERE application_name LIKE $1 || '%'`, [prefix]);
  return Number(result.rows[0]?.count);
}

async function waitUntil(condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<number> {
  const startedAt = Date.now();
  while (!(await condition())) {
    if (Date.now() - startedAt > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return Date.now() - startedAt;
}

function leaderOf(contenders: readonly Contender[]): Contender[] {
  return contenders.filter((candidate) => candidate.leadership.state === 'leading');
}

describe('advisory-lock leadership', () => {
  it('elects exactly one leader among five contenders, and only it runs the work', async () => {
    const work = new Work();
    const contenders = ['a', 'b', 'c', 'd', 'e'].map((name) => contender(name, work));
    await Promise.all(contenders.map((candidate) => candidate.leadership.start()));

    const leaders = leaderOf(contenders);
    expect(leaders).toHaveLength(1);
    const [leader] = leaders;
    expect([...work.running]).toEqual([leader?.name]);
    expect((await holders()).map((holder) => holder.name)).toEqual([leader?.name]);
    expect(contenders.filter((candidate) => candidate.leadership.state === 'contending')).toHaveLength(4);
    expect(leader?.events).toEqual([{ kind: 'elected' }]);
    expect(work.overlaps).toBe(0);
  });

  it('stops the work at once when the leader session is terminated, and another contender leads within seconds', async () => {
    // Checks five seconds apart: a stop at the next check would come 2.5 s later on average, and
    // within a second one time in five; a stop on the session's end comes within a second on a
    // loaded machine too.
    const timing: LeadershipTiming = { retryIntervalMs: 5_000, heartbeatTimeoutMs: 2_000 };
    const work = new Work();
    const contenders = ['a', 'b', 'c'].map((name) => contender(name, work, { timing }));
    await Promise.all(contenders.map((candidate) => candidate.leadership.start()));
    const [oldLeader] = leaderOf(contenders);
    const [held] = await holders();
    if (oldLeader === undefined || held === undefined) throw new Error('no leader');

    const terminatedAt = Date.now();
    await database.pool.query('SELECT pg_terminate_backend($1)', [held.pid]);
    const stoppedMs = await waitUntil(() => !work.running.has(oldLeader.name), 10_000);
    await waitUntil(() => work.running.size === 1, 10_000);
    const takeoverMs = Date.now() - terminatedAt;

    // Stopping reacts to the session's end, not to the next check; taking over waits at most one retry interval.
    expect(stoppedMs).toBeLessThan(1_000);
    expect(takeoverMs).toBeLessThan(timing.retryIntervalMs + 2_000);
    const [newLeader] = leaderOf(contenders);
    expect(newLeader?.name).not.toBe(oldLeader.name);
    expect([...work.running]).toEqual([newLeader?.name]);
    expect((await holders()).map((holder) => holder.name)).toEqual([newLeader?.name]);
    expect(oldLeader.events).toEqual([{ kind: 'elected' }, { kind: 'deposed', reason: expect.stringContaining('terminat') }]);
    expect(oldLeader.leadership.state).toBe('contending');
    expect(work.overlaps).toBe(0);
  });

  it('on stop, stands the work down before releasing the lock, and another contender takes over', async () => {
    // The follower tries several times while the leader's work is still standing down.
    const timing: LeadershipTiming = { retryIntervalMs: 100, heartbeatTimeoutMs: 1_000 };
    const work = new Work();
    const first = contender('first', work, { standDownMs: 500, timing });
    await first.leadership.start();
    const second = contender('second', work, { timing });
    await second.leadership.start();
    expect(leaderOf([first, second])).toEqual([first]);

    await first.leadership.stop();
    expect(first.leadership.state).toBe('stopped');
    expect(first.events).toEqual([{ kind: 'elected' }, { kind: 'released' }]);
    expect(await sessionsNamed('leadership-spec first')).toBe(0);
    await waitUntil(() => second.leadership.state === 'leading', timing.retryIntervalMs + 1_000);
    expect([...work.running]).toEqual(['second']);
    // The slow stand-down finished before the lock was free: the two never ran the work together.
    expect(work.overlaps).toBe(0);

    await second.leadership.stop();
    expect(await holders()).toEqual([]);
    expect(await sessionsNamed('leadership-spec')).toBe(0);
  });

  it('leads each worker on its own lock', async () => {
    const expiry = new Work();
    const purge = new Work();
    const expiryLeader = contender('expiry', expiry, { worker: 'payment-expiry' });
    const purgeLeader = contender('purge', purge, { worker: 'idempotency-purge' });
    await Promise.all([expiryLeader.leadership.start(), purgeLeader.leadership.start()]);
    expect([expiryLeader.leadership.state, purgeLeader.leadership.state]).toEqual(['leading', 'leading']);
    expect((await holders('payment-expiry')).map((holder) => holder.name)).toEqual(['expiry']);
    expect((await holders('idempotency-purge')).map((holder) => holder.name)).toEqual(['purge']);
  });

  it('keeps trying while the database cannot be reached, reports the outage once, and leads once it can', async () => {
    const adminUrl = process.env.TOKEN_LEDGER_TEST_ADMIN_URL ?? '';
    const missing = `token_ledger_leadership_${randomBytes(4).toString('hex')}`;
    const url = new URL(adminUrl);
    url.pathname = `/${missing}`;
    const work = new Work();
    const late = contender('late', work, { connectionString: url.toString() });
    await late.leadership.start();
    expect(late.leadership.state).toBe('contending');
    // Several retries fail meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 2.5 * LEADERSHIP_TIMING.retryIntervalMs));
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${missing}`);
      await waitUntil(() => late.leadership.state === 'leading', LEADERSHIP_TIMING.retryIntervalMs + 2_000);
      expect(late.events).toEqual([{ kind: 'error', reason: expect.stringContaining(missing) }, { kind: 'elected' }]);
      await late.leadership.stop();
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${missing} WITH (FORCE)`);
      await admin.end();
    }
  });

  it('stands down when its session stops answering, though the server still holds the lock', async () => {
    const timing: LeadershipTiming = { retryIntervalMs: 200, heartbeatTimeoutMs: 500 };
    const proxy = await frozenableProxy(new URL(database.url));
    try {
      const work = new Work();
      const cutOff = contender('cut-off', work, { connectionString: proxy.url, timing });
      await cutOff.leadership.start();
      const other = contender('other', work, { timing });
      await other.leadership.start();
      expect(leaderOf([cutOff, other])).toEqual([cutOff]);

      proxy.freeze();
      const stoppedMs = await waitUntil(() => work.running.size === 0, 5_000);
      // Well before the server's keepalive would end the session (8 s): the heartbeat's timeout, with room for a loaded machine.
      expect(stoppedMs).toBeLessThan(timing.retryIntervalMs + timing.heartbeatTimeoutMs + 2_000);
      // Its later attempts to reconnect through the silent network fail (kind 'error').
      expect(cutOff.events.slice(0, 2)).toEqual([{ kind: 'elected' }, { kind: 'deposed', reason: 'Query read timeout' }]);
      expect(cutOff.events.slice(2).every((event) => event.kind === 'error')).toBe(true);
      // The server has not noticed yet: the lock is still held, so nobody else leads...
      expect((await holders()).map((holder) => holder.name)).toEqual(['cut-off']);
      expect(other.leadership.state).toBe('contending');
      // ...until the session really ends (here: the connection is cut; for real: the server's keepalive).
      proxy.cut();
      await waitUntil(() => other.leadership.state === 'leading', 5_000);
      expect([...work.running]).toEqual(['other']);
      expect(work.overlaps).toBe(0);
    } finally {
      proxy.cut();
      await proxy.close();
    }
  });
});

