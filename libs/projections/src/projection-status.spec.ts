import { formatPosition, PostgresEventStore, type RecordedEvent } from '@app/event-store';
import { initialTokenAccountState } from '@app/ledger';
import { createTestDatabase, type TestDatabase } from '../../../test/support/test-database.js';
import { ProjectionRebuilds } from './projection-rebuild.js';
import { ProjectionRunner } from './projection-runner.js';
import { projectionStatuses, type ProjectionStatus } from './projection-status.js';
import type { Projection } from './projection.js';
import { appendDecided, seededRandom, seededUuid } from '@app/testing';
import { tokenAccountsProjection } from './read-models/token-accounts/token-accounts.projection.js';

let database: TestDatabase;
let store: PostgresEventStore;
const runners: ProjectionRunner[] = [];

beforeEach(async () => {
  database = await createTestDatabase();
  store = new PostgresEventStore(database.pool, { connectionString: database.url, pollIntervalMs: 20 });
  await database.pool.query('CREATE TABLE event_log (event_id uuid PRIMARY KEY)');
});

afterEach(async () => {
  await Promise.all(runners.splice(0).map((runner) => runner.stop()));
  await store.close();
  await database.drop();
});

/** A second projection beside token_accounts, to show that one failing projection does not stop another. */
const eventLog: Projection = {
  name: 'event_log',
  tables: ['event_log'],
  project: (event) => [{ text: 'INSERT INTO event_log (event_id) VALUES ($1)', values: [event.id] }],
};

function runner(projection: Projection): ProjectionRunner {
  const created = new ProjectionRunner(store, database.pool, projection, { batchSizeMax: 5, retryDelayMsMin: 10, retryDelayMsMax: 40 });
  runners.push(created);
  created.start();
  return created;
}

async function waitUntil(condition: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function statuses(projections: readonly Projection[], live: readonly ProjectionRunner[]): Promise<Map<string, ProjectionStatus>> {
  const rebuilds = new ProjectionRebuilds(store, database.pool, { connectionString: database.url, projections });
  const all = await projectionStatuses({
    store,
    pool: database.pool,
    projections,
    runners: new Map(live.map((each) => [each.projection.name, each])),
    rebuilds,
  });
  return new Map(all.map((status) => [status.name, status]));
}

describe('a projection that cannot apply an event', () => {
  it('stops at that event and reports it while other projections go on; after a fix and a restart it resumes from it', async () => {
    const random = seededRandom(21);
    const account = { userId: seededUuid(random), state: initialTokenAccountState, revision: -1n };
    for (let round = 0; round < 6; round += 1) await appendDecided(store, random, account, 5, new Date('2026-11-24T12:00:00.000Z'));
    let events: readonly RecordedEvent[] = [];
    await waitUntil(async () => (events = await store.readAll()).length === 30);
    const poison = events[17] as RecordedEvent;
    const broken: Projection = {
      ...tokenAccountsProjection,
      project: (event) => {
        if (event.id === poison.id) throw new Error('cannot apply: handler bug');
        return tokenAccountsProjection.project(event);
      },
    };

    const failing = runner(broken);
    const healthy = runner(eventLog);
    await waitUntil(() => failing.state === 'failed' && (failing.failure?.attempts ?? 0) >= 3);
    await waitUntil(async () => (await database.pool.query('SELECT 1 FROM event_log')).rowCount === 30);

    const report = await statuses([broken, eventLog], [failing, healthy]);
    expect(report.get('token_accounts')).toMatchObject({
      state: 'failed',
      checkpoint: formatPosition((events[14] as RecordedEvent).position),
      head: formatPosition((events[29] as RecordedEvent).position),
      lagEvents: 15,
      failure: { position: formatPosition(poison.position), eventType: poison.type, error: 'cannot apply: handler bug', attempts: expect.any(Number) as unknown },
      rebuild: null,
    });
    expect(report.get('token_accounts')?.lagSeconds).toBeGreaterThan(0);
    expect(report.get('event_log')).toMatchObject({ state: 'running', lagEvents: 0, lagSeconds: 0, failure: null });
    // Never skipped: the rows stop right before the failing event, attempt after attempt.
    expect((await database.pool.query('SELECT 1 FROM token_transactions')).rowCount).toBe(15);

    await failing.stop();
    const fixed = runner(tokenAccountsProjection);
    await waitUntil(async () => (await database.pool.query('SELECT 1 FROM token_transactions')).rowCount === 30);
    await waitUntil(() => fixed.state === 'running');
    const recovered = await statuses([tokenAccountsProjection, eventLog], [fixed, healthy]);
    expect(recovered.get('token_accounts')).toMatchObject({ state: 'running', lagEvents: 0, failure: null });
    const balance = await database.pool.query<{ balance: string }>('SELECT balance FROM user_tokens WHERE user_id = $1', [account.userId]);
    expect(balance.rows[0]?.balance).toBe(String(account.state.balance));
  });

  it('stores the failure where every process reads it: a standby process and the CLI see it, after the runner is gone too, until the runner gets past it', async () => {
    const random = seededRandom(22);
    const account = { userId: seededUuid(random), state: initialTokenAccountState, revision: -1n };
    for (let round = 0; round < 2; round += 1) await appendDecided(store, random, account, 5, new Date('2026-11-24T12:00:00.000Z'));
    let events: readonly RecordedEvent[] = [];
    await waitUntil(async () => (events = await store.readAll()).length === 10);
    const poison = events[6] as RecordedEvent;
    const broken: Projection = {
      ...tokenAccountsProjection,
      project: (event) => {
        if (event.id === poison.id) throw new Error('cannot apply: handler bug');
        return tokenAccountsProjection.project(event);
      },
    };
    const failing = runner(broken);
    const seenWithoutRunner = async () => (await statuses([tokenAccountsProjection], [])).get('token_accounts');
    // Wait on the stored count, not the runner's: the runner counts an attempt before it stores it.
    await waitUntil(async () => ((await seenWithoutRunner())?.failure?.attempts ?? 0) >= 3);
    const standby = { state: 'standby' as const, failure: undefined };
    const seenByStandby = (await projectionStatuses({
      store,
      pool: database.pool,
      projections: [tokenAccountsProjection],
      runners: new Map([['token_accounts', standby]]),
      rebuilds: new ProjectionRebuilds(store, database.pool, { connectionString: database.url, projections: [tokenAccountsProjection] }),
    }))[0];
    expect(seenByStandby).toMatchObject({
      state: 'failed',
      failure: {
        position: formatPosition(poison.position),
        eventType: poison.type,
        error: 'cannot apply: handler bug',
        attempts: expect.any(Number) as unknown,
        failedAt: expect.any(String) as unknown,
        firstFailedAt: expect.any(String) as unknown,
      },
    });
    expect(seenByStandby?.failure?.attempts).toBeGreaterThanOrEqual(3);
    expect(Date.parse(seenByStandby?.failure?.firstFailedAt ?? '')).toBeLessThan(Date.parse(seenByStandby?.failure?.failedAt ?? ''));

    // The process that ran it is gone: the failure is still there to see.
    await failing.stop();
    const afterStop = await seenWithoutRunner();
    expect(afterStop).toMatchObject({ state: 'failed', failure: { position: formatPosition(poison.position) } });
    // The failures at that position go on counting in another process.
    const attemptsBefore = afterStop?.failure?.attempts ?? 0;
    const stillBroken = runner(broken);
    await waitUntil(async () => ((await seenWithoutRunner())?.failure?.attempts ?? 0) > attemptsBefore);
    expect((await seenWithoutRunner())?.failure?.firstFailedAt).toBe(afterStop?.failure?.firstFailedAt);
    await stillBroken.stop();

    const fixed = runner(tokenAccountsProjection);
    await waitUntil(async () => (await database.pool.query('SELECT 1 FROM token_transactions')).rowCount === 10);
    expect(await seenWithoutRunner()).toMatchObject({ state: 'stopped', failure: null });
    expect((await database.pool.query('SELECT 1 FROM projection_failures')).rowCount).toBe(0);
    await fixed.stop();
  });
});

describe('a runner with nothing to apply', () => {
  it('reports running once nothing is after its checkpoint, though no batch came to mark it so (a restart or a rebuild on a quiet system)', async () => {
    const random = seededRandom(22);
    const account = { userId: seededUuid(random), state: initialTokenAccountState, revision: -1n };
    await appendDecided(store, random, account, 3, new Date('2026-11-24T12:00:00.000Z'));
    const first = runner(eventLog);
    await waitUntil(async () => (await database.pool.query('SELECT 1 FROM event_log')).rowCount === 3);
    await first.stop();
    // Restarted with its checkpoint at the head: no event comes, so the runner itself never leaves `catching_up`.
    const restarted = runner(eventLog);
    await waitUntil(() => restarted.state === 'catching_up');
    expect((await statuses([eventLog], [restarted])).get('event_log')).toMatchObject({ state: 'running', lagEvents: 0 });
  });
});
