import { randomUUID } from 'node:crypto';
import { formatPosition, PostgresEventStore, type RecordedEvent } from '@app/event-store';
import { tokenAccountStreamId } from '@app/ledger';
import { createTestDatabase, type TestDatabase } from '../../../test/support/test-database.js';
import { readCheckpoint } from './checkpoints.js';
import { ProjectionRunner, type BatchFallback, type ProjectionRunnerOptions } from './projection-runner.js';
import type { Projection } from './projection.js';
import { tokenAccountsProjection } from './read-models/token-accounts/token-accounts.projection.js';

let database: TestDatabase;
let store: PostgresEventStore;
const runners: ProjectionRunner[] = [];

function newRunner(projection: Projection = tokenAccountsProjection, overrides: Partial<ProjectionRunnerOptions> = {}): ProjectionRunner {
  const runner = new ProjectionRunner(store, database.pool, projection, { ...options, ...overrides });
  runners.push(runner);
  return runner;
}

beforeEach(async () => {
  database = await createTestDatabase();
  store = new PostgresEventStore(database.pool, { connectionString: database.url, pollIntervalMs: 20, subscriptionBatchSize: 50 });
});

afterEach(async () => {
  // Stops what a failed test left running, so one failure does not hang the file.
  await Promise.all(runners.splice(0).map((runner) => runner.stop()));
  await store.close();
  await database.drop();
});

const options = { batchSizeMax: 10, retryDelayMsMin: 10, retryDelayMsMax: 50 };
const at = '2026-11-24T12:00:00.000Z';

/** Appends `perUser` purchases of 1..perUser tokens for each of `users` users. Returns the expected balances. */
async function seed(users: number, perUser: number): Promise<Map<string, number>> {
  const balances = new Map<string, number>();
  for (let user = 0; user < users; user += 1) {
    const userId = randomUUID();
    let balance = 0;
    const events = Array.from({ length: perUser }, (_, index) => {
      balance += index + 1;
      return {
        id: randomUUID(),
        type: 'TokensPurchased',
        data: { userId, transactionId: randomUUID(), paymentId: randomUUID(), amount: index + 1, description: null, balanceAfter: balance, occurredAt: at },
      };
    });
    await store.append(tokenAccountStreamId(userId), events, { expectedRevision: 'no_stream' });
    balances.set(userId, balance);
  }
  return balances;
}

async function waitUntil(condition: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** All events once `count` are visible: other databases' open transactions delay $all visibility (cluster-wide xids). */
async function settledEvents(count: number): Promise<readonly RecordedEvent[]> {
  let events = await store.readAll();
  while (events.length < count) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    events = await store.readAll();
  }
  return events;
}

async function rowCount(): Promise<number> {
  const result = await database.pool.query<{ count: string }>('SELECT count(*) FROM token_transactions');
  return Number(result.rows[0]?.count);
}

async function expectReadModelsToMatch(balances: Map<string, number>, perUser: number): Promise<void> {
  const rows = await database.pool.query<{ user_id: string; balance: string; transaction_count: string; total: string; count: string }>(
    `SELECT u.user_id, u.balance, u.transaction_count, sum(t.amount) AS total, count(t.*) AS count
       FROM user_tokens u JOIN token_transactions t ON t.user_id = u.user_id GROUP BY u.user_id`,
  );
  expect(rows.rows).toHaveLength(balances.size);
  for (const row of rows.rows) {
    expect(Number(row.balance)).toBe(balances.get(row.user_id));
    expect(row.total).toBe(row.balance);
    expect(Number(row.count)).toBe(perUser);
    expect(Number(row.transaction_count)).toBe(perUser);
  }
}

describe('projection runner', () => {
  it('builds user_tokens and token_transactions with sum(amount) = balance for every user', async () => {
    const balances = await seed(5, 20);
    const runner = newRunner();
    runner.start();
    await waitUntil(async () => (await rowCount()) === 100);
    await runner.stop();
    await expectReadModelsToMatch(balances, 20);
  });

  it('leaves no duplicate and no missing row when killed mid-batch and restarted', async () => {
    const balances = await seed(10, 30);
    const events = await settledEvents(300);
    const crashAt = (events[155] as RecordedEvent).id;
    // The "process" dies in the middle of a batch: rows already written in that batch's transaction must vanish with it.
    const dying: Projection = {
      ...tokenAccountsProjection,
      project: (event) => {
        if (event.id === crashAt) throw new Error('process killed');
        return tokenAccountsProjection.project(event);
      },
    };
    const first = newRunner(dying);
    first.start();
    await waitUntil(() => first.state === 'failed');
    await first.stop();
    const survived = await rowCount();
    // Rows and checkpoint moved together: exactly the events up to the checkpoint are in the read model.
    expect(survived).toBeLessThanOrEqual(155);
    expect(await readCheckpoint(database.pool, tokenAccountsProjection.name)).toEqual((events[survived - 1] as RecordedEvent).position);

    const second = newRunner();
    second.start();
    await waitUntil(async () => (await rowCount()) === 300);
    await second.stop();
    await expectReadModelsToMatch(balances, 30);
  });

  it('applies every event exactly once when two runners race on one projection', async () => {
    const balances = await seed(8, 25);
    const racing = [newRunner(), newRunner()];
    for (const runner of racing) runner.start();
    await waitUntil(async () => (await rowCount()) === 200);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await Promise.all(racing.map((runner) => runner.stop()));
    await expectReadModelsToMatch(balances, 25);
  });

  it('stops at an event it cannot apply, reports it, retries, and resumes from it after a fix', async () => {
    const balances = await seed(3, 10);
    const failing = (await settledEvents(30))[14] as RecordedEvent;
    let broken = true;
    const flaky: Projection = {
      ...tokenAccountsProjection,
      project: (event) => {
        if (broken && event.id === failing.id) throw new Error('handler bug');
        return tokenAccountsProjection.project(event);
      },
    };
    const failures: string[] = [];
    const runner = newRunner(flaky, { batchSizeMax: 1, onFailure: (_name, failure) => failures.push(failure.error) });
    runner.start();
    await waitUntil(() => failures.length >= 2);
    expect(runner.state).toBe('failed');
    expect(runner.failure).toMatchObject({ eventType: 'TokensPurchased', error: 'handler bug' });
    expect(await rowCount()).toBe(14);

    broken = false;
    await waitUntil(async () => (await rowCount()) === 30);
    await waitUntil(() => runner.state === 'running');
    expect(runner.failure).toBeUndefined();
    await runner.stop();
    await expectReadModelsToMatch(balances, 10);
  });

  it('applies a batch many statements to a round trip; when a round trip fails, applies it again one statement at a time and names the event that fails, keeping nothing of the batch', async () => {
    await seed(3, 10);
    const events = await settledEvents(30);
    // A usage the ledger would never decide, in the middle: it reuses a purchase's transaction id, which token_transactions refuses.
    const victim = events[0] as RecordedEvent;
    const { userId, transactionId } = victim.data as { userId: string; transactionId: string };
    const poisonId = randomUUID();
    await store.append(
      tokenAccountStreamId(userId),
      [{ id: poisonId, type: 'TokensUsed', data: { userId, transactionId, amount: 1, description: null, balanceAfter: 54, occurredAt: at } }],
      { expectedRevision: 9n },
    );
    await seed(2, 10);
    const poison = (await settledEvents(51)).find((event) => event.id === poisonId) as RecordedEvent;
    const fallbacks: BatchFallback[] = [];
    const runner = newRunner(tokenAccountsProjection, { batchSizeMax: 100, onFallback: (_name, fallback) => fallbacks.push(fallback) });
    runner.start();
    await waitUntil(() => runner.state === 'failed');
    await runner.stop();
    expect(runner.failure).toMatchObject({ eventType: 'TokensUsed', position: formatPosition(poison.position) });
    expect(runner.batches.oneAtATime).toBeGreaterThan(0);
    // Each fallback is reported, with the round trip's error: the poison is in the first page of 50.
    expect(fallbacks.length).toBe(runner.batches.oneAtATime);
    expect(fallbacks[0]).toEqual({ from: 'event-by-event', events: 50, error: expect.stringContaining('duplicate key') });
    // The events before the poison, in its batch, were applied and rolled back with it.
    expect(await rowCount()).toBe(0);
    expect(await readCheckpoint(database.pool, tokenAccountsProjection.name)).toBeUndefined();
    // The connections that failed were discarded: no pooled one keeps the statements the failed round trips prepared.
    const clients = await Promise.all(Array.from({ length: database.pool.idleCount }, () => database.pool.connect()));
    try {
      for (const client of clients) expect((await client.query("SELECT name FROM pg_prepared_statements WHERE name LIKE 'event\\_by\\_event\\_%'")).rows).toEqual([]);
    } finally {
      for (const client of clients) client.release();
    }
  });

  it('applies a batch whose round trip failed after others were sent again one statement at a time, once, when the failure does not recur', async () => {
    const balances = await seed(10, 50);
    const events = await settledEvents(500);
    // The 451st event's extra statement divides by zero the first time it is projected (the batched
    // pass), past the first round trip (1,000 statements), and not when projected again.
    const failing = events[450] as RecordedEvent;
    expect(events.slice(0, 450).reduce((statements, event) => statements + tokenAccountsProjection.project(event).length, 0)).toBeGreaterThan(1_000);
    let projections = 0;
    const onceFailing: Projection = {
      ...tokenAccountsProjection,
      project: (event) => {
        const changes = tokenAccountsProjection.project(event);
        if (event.id !== failing.id) return changes;
        projections += 1;
        return [...changes, { text: 'SELECT 1 / $1::int', values: [projections === 1 ? 0 : 1] }];
      },
    };
    // Pages of 1,000, so the 500 events are one batch.
    const wide = new PostgresEventStore(database.pool, { connectionString: database.url, pollIntervalMs: 20, subscriptionBatchSize: 1_000 });
    const fallbacks: (BatchFallback & { readonly name: string })[] = [];
    const runner = new ProjectionRunner(wide, database.pool, onceFailing, { ...options, batchSizeMax: 500, onFallback: (name, fallback) => fallbacks.push({ name, ...fallback }) });
    runners.push(runner);
    try {
      runner.start();
      await waitUntil(async () => (await rowCount()) === 500);
      await runner.stop();
    } finally {
      await wide.close();
    }
    expect([projections, runner.batches.eventByEvent, runner.batches.oneAtATime, runner.failure]).toEqual([2, 1, 1, undefined]);
    // A failure that did not recur is reported all the same: the batched pass costs every try until it is found.
    expect(fallbacks).toEqual([{ name: tokenAccountsProjection.name, from: 'event-by-event', events: 500, error: 'division by zero' }]);
    // Applied once: the round trips sent before the failure were rolled back to the batch's savepoint.
    await expectReadModelsToMatch(balances, 50);
  });

  it('resolves waitFor once the checkpoint reaches a position, and false on timeout', async () => {
    await seed(1, 3);
    const [last] = (await settledEvents(3)).slice(-1);
    const runner = newRunner();
    await expect(runner.waitFor((last as RecordedEvent).position, 20)).resolves.toBe(false);
    runner.start();
    await expect(runner.waitFor((last as RecordedEvent).position, 5_000)).resolves.toBe(true);
    await runner.stop();
  });
});
