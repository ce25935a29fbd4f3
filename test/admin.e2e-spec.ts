import { randomUUID } from 'node:crypto';
import { ProjectionsAdmin, verifyAccount } from '@app/operations';
import { EVENT_STORE, PostgresEventStore, type EventStore } from '@app/event-store';
import { MockPaymentProvider, PAYMENT_PROVIDER } from '@app/payments';
import { initialTokenAccountState, tokenAccountStreamId } from '@app/ledger';
import { ProjectionRunner, tokenAccountsProjection, type Projection } from '@app/projections';
import { appendDecided, seededRandom, seededUuid, type GeneratedAccount } from '@app/testing';
import type { Pool } from 'pg';
import { startTestApp, startTestAppOn, type TestApp } from './support/test-app.js';

const startAt = new Date('2026-11-24T12:00:00.000Z');

async function waitUntil(condition: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Every row of the projection's tables, in a fixed order, as text. */
async function dump(pool: Pool): Promise<Record<string, unknown[]>> {
  const users = await pool.query('SELECT user_tokens::text AS row FROM user_tokens ORDER BY user_id');
  const transactions = await pool.query('SELECT token_transactions::text AS row FROM token_transactions ORDER BY event_id');
  const payments = await pool.query('SELECT payments::text AS row FROM payments ORDER BY id');
  const holds = await pool.query('SELECT token_holds::text AS row FROM token_holds ORDER BY hold_id');
  const lots = await pool.query('SELECT token_lots::text AS row FROM token_lots ORDER BY user_id, lot_id');
  return { users: users.rows, transactions: transactions.rows, payments: payments.rows, holds: holds.rows, lots: lots.rows };
}

/** The token_accounts status once it has caught up with the head. */
/**
 * Waits until the projection has applied every event written so far. The status's head is the newest
 * event `$all` can show, which another test file's open transaction on the same server holds back
 * (transaction ids are cluster-wide), so the checkpoint is also compared with the last event in the
 * table itself.
 */
async function caughtUp(testApp: TestApp): Promise<Record<string, unknown>> {
  let status: Record<string, unknown> = {};
  await waitUntil(async () => {
    const response = await testApp.http().get('/v1/admin/projections').expect(200);
    status = (response.body.data as Record<string, unknown>[]).find((projection) => projection.name === 'token_accounts') ?? {};
    const written = await testApp.database.pool.query<{ position: string }>(
      `SELECT transaction_id::text || '/' || global_position::text AS position FROM events ORDER BY events.transaction_id DESC, events.global_position DESC LIMIT 1`,
    );
    const last = written.rows[0]?.position ?? null;
    return status.state === 'running' && status.lagEvents === 0 && status.checkpoint === status.head && status.checkpoint === last;
  });
  return status;
}

/** Writes a decided history straight to the event store (fast); the app's runner projects it. */
async function seedHistory(testApp: TestApp, users: number, rounds: number): Promise<string[]> {
  const store = new PostgresEventStore(testApp.database.pool, { connectionString: testApp.database.url });
  const random = seededRandom(2026);
  const accounts: GeneratedAccount[] = Array.from({ length: users }, () => ({ userId: seededUuid(random), state: initialTokenAccountState, revision: -1n }));
  for (let round = 0; round < rounds; round += 1) {
    for (const account of accounts) await appendDecided(store, random, account, 10, startAt);
  }
  await store.close();
  return accounts.map((account) => account.userId);
}

describe('admin: projections', () => {
  let testApp: TestApp;

  beforeEach(async () => {
    testApp = await startTestApp();
  });

  afterEach(async () => {
    await testApp.close();
  });

  it('reports each projection with its checkpoint, head, lag and state', async () => {
    const userId = randomUUID();
    await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 10 }).expect(201);
    const status = await caughtUp(testApp);
    expect(status).toEqual({
      name: 'token_accounts',
      state: 'running',
      checkpoint: expect.stringMatching(/^\d+\/\d+$/),
      head: status.checkpoint,
      lagEvents: 0,
      lagSeconds: 0,
      failure: null,
      rebuild: null,
    });
  });

  it('shows the stored failure of a projection on every instance, and none once its runner gets past it', async () => {
    const follower = await startTestAppOn(testApp.database);
    try {
      // What the runner of the leading process stores when a batch fails (libs/projections/src/projection-failures.ts).
      await testApp.database.pool.query(
        `INSERT INTO projection_failures (name, position, event_type, error, attempts, first_failed_at, failed_at)
         VALUES ('token_accounts', '0/0', 'unknown', 'Connection terminated unexpectedly', 4, '2026-11-24T12:00:00Z', '2026-11-24T12:00:07Z')`,
      );
      for (const instance of [testApp, follower]) {
        const status = ((await instance.http().get('/v1/admin/projections').expect(200)).body.data as Record<string, unknown>[])[0];
        expect(status).toMatchObject({
          state: 'failed',
          failure: { position: '0/0', eventType: 'unknown', error: 'Connection terminated unexpectedly', attempts: 4, firstFailedAt: '2026-11-24T12:00:00.000Z', failedAt: '2026-11-24T12:00:07.000Z' },
        });
      }
      await testApp.http().post(`/v1/accounts/${randomUUID()}/purchases`).send({ paymentId: randomUUID(), amount: 10 }).expect(201);
      expect(await caughtUp(testApp)).toMatchObject({ state: 'running', failure: null });
      expect((await follower.http().get('/v1/admin/projections').expect(200)).body.data).toMatchObject([{ state: 'standby', failure: null }]);
      // Failures stored late, by a leader that lost its leadership while recording them, after this runner's batches.
      const storeLate = (position: string) =>
        testApp.database.pool.query(
          `INSERT INTO projection_failures (name, position, event_type, error, attempts, first_failed_at, failed_at)
           VALUES ('token_accounts', $1, 'TokensPurchased', 'Connection terminated unexpectedly', 1, '2026-11-24T12:00:00Z', '2026-11-24T12:00:00Z')`,
          [position],
        );
      const status = async () => ((await testApp.http().get('/v1/admin/projections').expect(200)).body.data as Record<string, unknown>[])[0];
      // At an event the checkpoint has passed: over, though no batch has come since to delete it.
      await storeLate((await status())?.checkpoint as string);
      expect(await status()).toMatchObject({ state: 'running', failure: null });
      // At no known event (a lost connection): it stands until the runner's next batch deletes it.
      await testApp.database.pool.query("UPDATE projection_failures SET position = 'unknown' WHERE name = 'token_accounts'");
      expect(await status()).toMatchObject({ state: 'failed', failure: { position: 'unknown' } });
      await testApp.http().post(`/v1/accounts/${randomUUID()}/purchases`).send({ paymentId: randomUUID(), amount: 10 }).expect(201);
      expect(await caughtUp(testApp)).toMatchObject({ state: 'running', failure: null });
    } finally {
      await follower.close();
    }
  });

  it('answers running on the instance that leads a projection, standby on one that contends, stopped on one that does not', async () => {
    const follower = await startTestAppOn(testApp.database);
    const idle = await startTestAppOn(testApp.database, { PROJECTIONS_ENABLED: 'false' });
    try {
      const states = async (instance: TestApp) =>
        ((await instance.http().get('/v1/admin/projections').expect(200)).body.data as { name: string; state: string }[]).map((projection) => [projection.name, projection.state]);
      // A write through the follower is projected by the leader, and the follower waits for its checkpoint.
      const userId = randomUUID();
      const written = await follower.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 10 }).expect(201);
      expect(written.body).toMatchObject({ balance: 10, readModelUpToDate: true });
      await caughtUp(testApp);
      expect(await states(testApp)).toEqual([['token_accounts', 'running']]);
      expect(await states(follower)).toEqual([['token_accounts', 'standby']]);
      expect(await states(idle)).toEqual([['token_accounts', 'stopped']]);
    } finally {
      await follower.close();
      await idle.close();
    }
  });

  // The writers run for as long as the rebuild does, so a slower machine writes more events to
  // rebuild, verify and build again: 26 s alone on a loaded 2-core host (verifyAll 9 s, the
  // incremental build 10 s), past the default 30 s under the whole suite.
  it('rebuilds while writes and reads run: no read sees a partial read model, the rows equal the incremental build, verify passes', async () => {
    const users = await seedHistory(testApp, 20, 10);
    await caughtUp(testApp);
    const purchased = new Map<string, number>();
    const balancesBefore = await testApp.database.pool.query<{ user_id: string; balance: string }>('SELECT user_id, balance FROM user_tokens');
    for (const row of balancesBefore.rows) purchased.set(row.user_id, Number(row.balance));

    let running = true;
    const violations: string[] = [];
    // Writers race on the same accounts: purchases only on the first four, so their balances and
    // counts only grow.
    const buyers = Array.from({ length: 4 }, (_, writer) =>
      (async () => {
        for (let index = 0; running; index += 1) {
          const userId = users[(index + writer) % 4] as string;
          const amount = 1 + ((index * 7 + writer) % 50);
          await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount }).expect(201);
          purchased.set(userId, (purchased.get(userId) ?? 0) + amount);
        }
      })(),
    );
    // On the next four, holds that are settled or released, and spends: swaps also carry holds, their
    // ends and lot draws over.
    const spentOn = new Set(users.slice(4, 8));
    let holdsEnded = 0;
    const spenders = Array.from({ length: 2 }, (_, writer) =>
      (async () => {
        for (let index = 0; running; index += 1) {
          const userId = users[4 + ((index + writer) % 4)] as string;
          const hold = await testApp.http().post(`/v1/accounts/${userId}/holds`).send({ amount: 3 }).expect(201);
          const settle = index % 2 === 0;
          await testApp.http().post(`/v1/accounts/${userId}/holds/${hold.body.holdId}/${settle ? 'settle' : 'release'}`).send(settle ? { amount: 2 } : {}).expect(200);
          await testApp.http().post(`/v1/accounts/${userId}/usage`).send({ amount: 1 }).expect(201);
          purchased.set(userId, (purchased.get(userId) ?? 0) - (settle ? 3 : 1));
          holdsEnded += 1;
        }
      })(),
    );
    const writers = [...buyers, ...spenders];
    // A transaction with an id open elsewhere on the server holds `$all` back (as other test files' do
    // in CI, and a long write would in production): the swap then finds a head behind the writes and
    // carries the inline transactions since over, tens to hundreds of them (ADR 0007, 4 December addendum).
    const horizonHolder = (async () => {
      const client = await testApp.database.pool.connect();
      try {
        while (running) {
          await client.query('BEGIN');
          await client.query('SELECT pg_current_xact_id()');
          await new Promise((resolve) => setTimeout(resolve, 500));
          await client.query('COMMIT');
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      } finally {
        client.release();
      }
    })();
    // Readers: one statement sees one snapshot, so a partial swap would show as a missing user, rows
    // that do not add up, or a count going backwards.
    const seen = new Map<string, number>();
    const sqlReader = (async () => {
      while (running) {
        const result = await testApp.database.pool.query<{ user_id: string; balance: string; transaction_count: string; total: string | null; rows: string }>(
          `SELECT u.user_id, u.balance, u.transaction_count, t.total, t.rows FROM user_tokens u
             LEFT JOIN LATERAL (SELECT sum(amount)::text AS total, count(*)::text AS rows FROM token_transactions WHERE user_id = u.user_id) t ON true`,
        );
        if (result.rows.length !== users.length) violations.push(`saw ${result.rows.length} users`);
        for (const row of result.rows) {
          if (row.total !== row.balance || row.rows !== row.transaction_count) violations.push(`partial rows for ${row.user_id}`);
          if (Number(row.rows) < (seen.get(row.user_id) ?? 0)) violations.push(`rows of ${row.user_id} went backwards`);
          seen.set(row.user_id, Number(row.rows));
        }
      }
    })();
    const httpReader = (async () => {
      const totals = new Map<string, number>();
      for (let index = 0; running; index += 1) {
        const userId = users[index % users.length] as string;
        const history = await testApp.http().get(`/v1/accounts/${userId}/transactions?limit=1`).expect(200);
        const balance = await testApp.http().get(`/v1/accounts/${userId}/balance`).expect(200);
        if (history.body.total < (totals.get(userId) ?? 1)) violations.push(`history of ${userId} shrank to ${history.body.total}`);
        if (!spentOn.has(userId) && balance.body.balance < history.body.data[0].balanceAfter) violations.push(`balance of ${userId} went backwards`);
        totals.set(userId, history.body.total);
      }
    })();

    await new Promise((resolve) => setTimeout(resolve, 300));
    const key = randomUUID();
    const accepted = await testApp.http().post('/v1/admin/projections/token_accounts/rebuild').set('Idempotency-Key', key).expect(202);
    expect(accepted.headers.location).toBe(`/v1/admin/projections/token_accounts/rebuilds/${accepted.body.id}`);
    expect(accepted.body).toMatchObject({ projection: 'token_accounts', phase: 'loading', error: null });
    // A retry with its key is the same answer, Location included: a client that lost the first follows it.
    const replayed = await testApp.http().post('/v1/admin/projections/token_accounts/rebuild').set('Idempotency-Key', key).expect(202);
    expect(replayed.headers).toMatchObject({ 'idempotent-replayed': 'true', location: accepted.headers.location });
    expect(replayed.body).toEqual(accepted.body);
    let progress: Record<string, unknown> = {};
    await waitUntil(async () => {
      progress = (await testApp.http().get(accepted.headers.location as string).expect(200)).body;
      return progress.phase === 'completed' || progress.phase === 'failed';
    }, 60_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    running = false;
    await Promise.all([...writers, sqlReader, httpReader, horizonHolder]);

    expect(progress).toMatchObject({ phase: 'completed', error: null, etaSeconds: null });
    expect(progress.eventsDone).toBeGreaterThanOrEqual(2_000);
    expect(violations).toEqual([]);
    expect(holdsEnded).toBeGreaterThan(0);
    await caughtUp(testApp);
    for (const userId of users) {
      await testApp.http().get(`/v1/accounts/${userId}/balance`).expect(200, { userId, balance: purchased.get(userId), held: 0, available: purchased.get(userId), nextExpiry: null });
    }
    const admin = testApp.app.get(ProjectionsAdmin);
    expect(await admin.verifyAll()).toEqual({ accounts: users.length, findings: [] });

    // The reference: an incremental build of the same events from position 0.
    const rebuilt = await dump(testApp.database.pool);
    await testApp.app.close();
    const store = new PostgresEventStore(testApp.database.pool, { connectionString: testApp.database.url });
    await testApp.database.pool.query('TRUNCATE user_tokens, token_transactions, payments, token_holds, token_lots, token_accounts_inline_commits');
    await testApp.database.pool.query('DELETE FROM projection_checkpoints');
    const runner = new ProjectionRunner(store, testApp.database.pool, tokenAccountsProjection);
    runner.start();
    await waitUntil(async () => (await testApp.database.pool.query('SELECT 1 FROM token_transactions')).rowCount === rebuilt.transactions?.length, 60_000);
    await runner.stop();
    await store.close();
    expect(await dump(testApp.database.pool)).toEqual(rebuilt);
  }, 120_000);

  it('refuses a second rebuild while one runs (409) and reports the running one', async () => {
    await seedHistory(testApp, 3, 2);
    await caughtUp(testApp);
    // A transaction holding the live checkpoint keeps the rebuild in its swap.
    const holder = await testApp.database.pool.connect();
    const retryKey = randomUUID();
    let id: string;
    try {
      await holder.query('BEGIN');
      await holder.query("SELECT * FROM projection_checkpoints WHERE name = 'token_accounts' FOR UPDATE");
      const responses = await Promise.all(Array.from({ length: 5 }, () => testApp.http().post('/v1/admin/projections/token_accounts/rebuild')));
      const accepted = responses.filter((response) => response.status === 202);
      const refused = responses.filter((response) => response.status === 409);
      expect(accepted).toHaveLength(1);
      expect(refused).toHaveLength(4);
      id = accepted[0]?.body.id as string;
      for (const response of refused) expect(response.body).toMatchObject({ code: 'REBUILD_IN_PROGRESS', projection: 'token_accounts', rebuildId: id });
      // Refused under an Idempotency-Key too, and not kept: "not now", so the same key may start one later.
      const keyed = await testApp.http().post('/v1/admin/projections/token_accounts/rebuild').set('Idempotency-Key', retryKey).expect(409);
      expect(keyed.body).toMatchObject({ code: 'REBUILD_IN_PROGRESS', rebuildId: id });
      await waitUntil(async () => (await testApp.http().get(`/v1/admin/projections/token_accounts/rebuilds/${id}`)).body.phase === 'swapping');
      const status = await testApp.http().get('/v1/admin/projections').expect(200);
      expect(status.body.data[0]).toMatchObject({ state: 'rebuilding', rebuild: { id, phase: 'swapping', interrupted: false } });
    } finally {
      // An open transaction holds back $all visibility for every database of the server: never leave it open.
      await holder.query('ROLLBACK');
      holder.release();
    }
    await waitUntil(async () => (await testApp.http().get(`/v1/admin/projections/token_accounts/rebuilds/${id}`)).body.phase === 'completed');
    // The same key once the rebuild ended: a new rebuild, then replayed as started.
    const started = await testApp.http().post('/v1/admin/projections/token_accounts/rebuild').set('Idempotency-Key', retryKey).expect(202);
    expect(started.body.id).not.toBe(id);
    expect((await testApp.http().post('/v1/admin/projections/token_accounts/rebuild').set('Idempotency-Key', retryKey).expect(202)).body.id).toBe(started.body.id);
    await waitUntil(async () => (await testApp.http().get(`/v1/admin/projections/token_accounts/rebuilds/${started.body.id as string}`)).body.phase === 'completed');
    // Its answer never stored (the key's completion failed) and its claim lapsed: the client's retry
    // takes the key over and returns the same rebuild, ended, where it started a second one.
    const rebuilds = async () => Number((await testApp.database.pool.query<{ count: string }>('SELECT count(*) FROM projection_rebuilds')).rows[0]?.count);
    const before = await rebuilds();
    const unstored = await testApp.database.pool.query(
      "UPDATE idempotency_keys SET state = 'in_progress', response_status = NULL, response_content_type = NULL, response_body = NULL, response_location = NULL, locked_until = now() - interval '1 second' WHERE key = $1",
      [retryKey],
    );
    expect(unstored.rowCount).toBe(1);
    const retried = await testApp.http().post('/v1/admin/projections/token_accounts/rebuild').set('Idempotency-Key', retryKey).expect(202);
    expect(retried.headers['idempotent-replayed']).toBeUndefined();
    expect(retried.headers.location).toBe(`/v1/admin/projections/token_accounts/rebuilds/${started.body.id as string}`);
    expect(retried.body).toMatchObject({ id: started.body.id, phase: 'completed', error: null });
    expect(await rebuilds()).toBe(before);
    await caughtUp(testApp);
  });

  it('answers 404 for an unknown projection or rebuild and 400 for a malformed id', async () => {
    const unknown = await testApp.http().post('/v1/admin/projections/nope/rebuild').expect(404);
    expect(unknown.body).toMatchObject({ code: 'UNKNOWN_PROJECTION', projection: 'nope' });
    await testApp.http().get(`/v1/admin/projections/token_accounts/rebuilds/${randomUUID()}`).expect(404);
    const malformed = await testApp.http().get('/v1/admin/projections/token_accounts/rebuilds/42').expect(400);
    expect(malformed.body.errors).toEqual([expect.objectContaining({ field: 'id', rule: 'isUuid' })]);
    const badName = await testApp.http().post('/v1/admin/projections/Bad-Name/rebuild').expect(400);
    expect(badName.body.errors).toEqual([expect.objectContaining({ field: 'name', rule: 'matches' })]);
  });
});

describe('admin: per-account rebuild', () => {
  let testApp: TestApp;

  beforeEach(async () => {
    testApp = await startTestApp();
  });

  afterEach(async () => {
    await testApp.close();
  });

  it("recomputes a damaged account's rows, exactly, while purchases race on it", async () => {
    const userId = randomUUID();
    const other = randomUUID();
    for (const [index, user] of [userId, userId, userId, other].entries()) {
      await testApp.http().post(`/v1/accounts/${user}/purchases`).send({ paymentId: randomUUID(), amount: 10 + index }).expect(201);
    }
    await testApp.http().post(`/v1/accounts/${userId}/usage`).send({ amount: 5 }).expect(201);
    await caughtUp(testApp);
    const otherRows = await testApp.database.pool.query('SELECT token_transactions::text FROM token_transactions WHERE user_id = $1', [other]);
    await testApp.database.pool.query('UPDATE user_tokens SET balance = 999 WHERE user_id = $1', [userId]);
    await testApp.database.pool.query('DELETE FROM token_transactions WHERE user_id = $1 AND stream_revision = 1', [userId]);
    const admin = testApp.app.get(ProjectionsAdmin);
    const differences = await admin.verifyAccount(userId);
    expect(differences.map((difference) => difference.kind).sort()).toEqual(['missing', 'missing', 'unexpected']);

    const racing = await Promise.all([
      ...Array.from({ length: 10 }, () => testApp.http().post(`/v1/admin/accounts/${userId}/rebuild`)),
      ...Array.from({ length: 10 }, () => testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 1 })),
    ]);
    expect(racing.map((response) => response.status)).toEqual([...Array<number>(10).fill(200), ...Array<number>(10).fill(201)]);
    expect(racing[0]?.body).toMatchObject({ userId, projections: [{ name: 'token_accounts', eventsApplied: expect.any(Number) }] });
    await caughtUp(testApp);

    await testApp.http().get(`/v1/accounts/${userId}/balance`).expect(200, { userId, balance: 38, held: 0, available: 38, nextExpiry: null });
    const history = await testApp.http().get(`/v1/accounts/${userId}/transactions?limit=100`).expect(200);
    expect(history.body.total).toBe(14);
    expect(history.body.data.map((row: { balanceAfter: number }) => row.balanceAfter)).toEqual([38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28, 33, 21, 10]);
    expect(await admin.verifyAccount(userId)).toEqual([]);
    expect((await testApp.database.pool.query('SELECT token_transactions::text FROM token_transactions WHERE user_id = $1', [other])).rows).toEqual(otherRows.rows);
  });

  it("holds only that account's writes while its stream is held: other accounts' spends are answered meanwhile, and its own apply once after", async () => {
    const [held, others] = [randomUUID(), Array.from({ length: 5 }, () => randomUUID())];
    for (const user of [held, ...others]) await testApp.http().post(`/v1/accounts/${user}/purchases`).send({ paymentId: randomUUID(), amount: 100 }).expect(201);
    const store = testApp.app.get<EventStore>(EVENT_STORE, { strict: false });
    const holder = await testApp.database.pool.connect();
    let heldAnswered = false;
    let heldSpends: Promise<number[]> | undefined;
    try {
      // What a per-account rebuild or a verification takes first.
      await holder.query('BEGIN');
      await store.postgres?.holdStream(holder, tokenAccountStreamId(held));
      heldSpends = Promise.all(
        Array.from({ length: 10 }, (_, index) =>
          testApp.http().post(`/v1/accounts/${held}/usage`).set('Idempotency-Key', `held-${index}`).send({ amount: 1 }).then((response) => response.status),
        ),
      ).then((statuses) => {
        heldAnswered = true;
        return statuses;
      });
      // Each of these would have waited behind the held account's append before migration 138.
      for (let round = 0; round < 3; round += 1) {
        const answered = await Promise.all(others.map((user) => testApp.http().post(`/v1/accounts/${user}/usage`).send({ amount: 1 })));
        expect(answered.map((response) => response.status)).toEqual(others.map(() => 201));
      }
      expect(heldAnswered).toBe(false);
    } finally {
      await holder.query('COMMIT');
      holder.release();
    }
    expect(await heldSpends).toEqual(Array<number>(10).fill(201));
    await caughtUp(testApp);
    await testApp.http().get(`/v1/accounts/${held}/balance`).expect(200, { userId: held, balance: 90, held: 0, available: 90, nextExpiry: null });
    for (const user of others) await testApp.http().get(`/v1/accounts/${user}/balance`).expect(200, { userId: user, balance: 97, held: 0, available: 97, nextExpiry: null });
    const admin = testApp.app.get(ProjectionsAdmin);
    expect(await admin.verifyAccount(held)).toEqual([]);
  });

  it('verifies a long account in temporary tables: the differences found in place, its writes going on meanwhile, no connection left with the copies', async () => {
    const userId = randomUUID();
    await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 1000 }).expect(201);
    for (let index = 0; index < 20; index += 1) await testApp.http().post(`/v1/accounts/${userId}/usage`).send({ amount: 1 + index }).expect(201);
    const hold = await testApp.http().post(`/v1/accounts/${userId}/holds`).send({ amount: 50 }).expect(201);
    await testApp.http().post(`/v1/accounts/${userId}/holds/${hold.body.holdId as string}/settle`).send({ amount: 20 }).expect(200);
    await testApp.http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 30, reason: 'Promo' }).expect(201);
    await caughtUp(testApp);
    const store = testApp.app.get<EventStore>(EVENT_STORE, { strict: false });
    const pool = testApp.database.pool;
    const inScratch = { inPlaceEventsMax: 0 };
    expect(await verifyAccount(store, pool, [tokenAccountsProjection], userId, inScratch)).toEqual([]);

    await pool.query('UPDATE user_tokens SET balance = 999 WHERE user_id = $1', [userId]);
    await pool.query('DELETE FROM token_transactions WHERE user_id = $1 AND stream_revision = 3', [userId]);
    const inPlace = await verifyAccount(store, pool, [tokenAccountsProjection], userId);
    expect(inPlace.map((difference) => difference.kind).sort()).toEqual(['missing', 'missing', 'unexpected']);
    // The replay in temporary tables lets the stream go first: a spend on the account completes while
    // verify waits for it (in place, under the hold, it would wait out the 5 s append deadline: 503).
    let spend: number | undefined;
    const scratch = await verifyAccount(store, pool, [tokenAccountsProjection], userId, {
      ...inScratch,
      afterCut: async () => {
        spend = (await testApp.http().post(`/v1/accounts/${userId}/usage`).send({ amount: 1 })).status;
      },
    });
    expect(spend).toBe(201);
    expect(scratch).toEqual(inPlace);

    // Every pooled connection answers from the live tables again.
    const leftovers = await Promise.all(Array.from({ length: 10 }, () => pool.query<{ copies: string }>("SELECT count(*)::text AS copies FROM pg_class WHERE relpersistence = 't' AND pg_table_is_visible(oid)")));
    expect(leftovers.map((result) => result.rows[0]?.copies)).toEqual(Array<string>(10).fill('0'));
    await testApp.http().post(`/v1/admin/accounts/${userId}/rebuild`).expect(200);
    await caughtUp(testApp);
    expect(await verifyAccount(store, pool, [tokenAccountsProjection], userId, inScratch)).toEqual([]);
    await testApp.http().get(`/v1/accounts/${userId}/balance`).expect(200, { userId, balance: 1000 - 210 - 20 + 30 - 1, held: 0, available: 1000 - 210 - 20 + 30 - 1, nextExpiry: null });
  });

  it('reads the stream before its hold and, under it, what was appended since: a spend landing in between is replayed, not found unexpected', async () => {
    const userId = randomUUID();
    await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 100 }).expect(201);
    await testApp.http().post(`/v1/accounts/${userId}/usage`).send({ amount: 10 }).expect(201);
    await caughtUp(testApp);
    const store = testApp.app.get<EventStore>(EVENT_STORE, { strict: false });
    // The store as verify sees it: right after its first read of the stream, a spend is appended (inline, as the service does).
    let spend: number | undefined;
    const racing = new Proxy(store, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property, target);
        if (property !== 'readStream' || typeof value !== 'function') return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        return async (...args: Parameters<EventStore['readStream']>) => {
          const page = await target.readStream(...args);
          if (spend === undefined) spend = (await testApp.http().post(`/v1/accounts/${userId}/usage`).send({ amount: 5 })).status;
          return page;
        };
      },
    });
    for (const options of [{}, { inPlaceEventsMax: 0 }]) {
      spend = undefined;
      expect(await verifyAccount(racing, testApp.database.pool, [tokenAccountsProjection], userId, options)).toEqual([]);
      expect(spend).toBe(201);
    }
    await testApp.http().get(`/v1/accounts/${userId}/balance`).expect(200, { userId, balance: 80, held: 0, available: 80, nextExpiry: null });
  });

  it("catches a projection that loses a hold's end or what a refund took back: the ledger's fold disagrees with its replay", async () => {
    const userId = randomUUID();
    const bought = (await testApp.http().post('/v1/payments').send({ userId, packageId: 'starter' }).expect(201)).body as { paymentId: string };
    await testApp.http().post(`/v1/payments/${bought.paymentId}/capture`).send().expect(200);
    await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 50 }).expect(201);
    const { holdId } = (await testApp.http().post(`/v1/accounts/${userId}/holds`).send({ amount: 10 }).expect(201)).body as { holdId: string };
    await testApp.http().post(`/v1/accounts/${userId}/holds/${holdId}/release`).send({}).expect(200);
    await testApp.http().post(`/v1/payments/${bought.paymentId}/refund`).send().expect(200);
    await caughtUp(testApp);
    const store = testApp.app.get<EventStore>(EVENT_STORE, { strict: false });
    expect(await verifyAccount(store, testApp.database.pool, [tokenAccountsProjection], userId)).toEqual([]);
    // A projection bug that keeps a released hold active (its row and the held total), and one that records a refund as taking nothing.
    const buggy: Projection = {
      ...tokenAccountsProjection,
      project: (event) =>
        event.type === 'HoldReleased' ? [] : tokenAccountsProjection.project(event.type === 'PaymentRefunded' ? { ...event, data: { ...(event.data as Record<string, unknown>), tokensDebited: 0 } } : event),
    };
    const details = (await verifyAccount(store, testApp.database.pool, [buggy], userId)).filter((difference) => difference.kind !== 'missing' && difference.kind !== 'unexpected').map((difference) => difference.detail);
    expect(details).toEqual(
      expect.arrayContaining([
        `fold gives active holds , read model holds ${holdId}=10`,
        `payment ${bought.paymentId}: fold gives 100 tokens debited by its refund, read model holds 0`,
      ]),
    );
  });

  it("verifies and recomputes a user's payments rows, exactly, while payments race on the account", async () => {
    const userId = randomUUID();
    const provider = testApp.app.get<MockPaymentProvider>(PAYMENT_PROVIDER, { strict: false });
    const buy = async () => (await testApp.http().post('/v1/payments').send({ userId, packageId: 'starter' }).expect(201)).body as { paymentId: string; orderId: string };
    const capture = (paymentId: string) => testApp.http().post(`/v1/payments/${paymentId}/capture`).send();
    const completed = await buy();
    await capture(completed.paymentId).expect(200);
    const declined = await buy();
    await provider.behave('decline', declined.orderId);
    await capture(declined.paymentId).expect(402);
    const refunded = await buy();
    await capture(refunded.paymentId).expect(200);
    await testApp.http().post(`/v1/payments/${refunded.paymentId}/refund`).send().expect(200);
    const pending = await buy();
    await caughtUp(testApp);
    const admin = testApp.app.get(ProjectionsAdmin);
    expect(await admin.verifyAccount(userId)).toEqual([]);
    const statuses = async () =>
      (await testApp.database.pool.query<{ id: string; status: string }>('SELECT id::text, status FROM payments WHERE user_id = $1', [userId])).rows.reduce<Record<string, string>>(
        (all, row) => ({ ...all, [row.id]: row.status }),
        {},
      );
    expect(await statuses()).toEqual({ [completed.paymentId]: 'COMPLETED', [declined.paymentId]: 'FAILED', [refunded.paymentId]: 'REFUNDED', [pending.paymentId]: 'PENDING' });
    // A projection bug that forgets declines: its replay disagrees with the ledger's own fold of the stream.
    const store = testApp.app.get<EventStore>(EVENT_STORE, { strict: false });
    const forgetful: Projection = { ...tokenAccountsProjection, project: (event) => (event.type === 'PaymentFailed' ? [] : tokenAccountsProjection.project(event)) };
    const folded = await verifyAccount(store, testApp.database.pool, [forgetful], userId);
    expect(folded.filter((difference) => difference.kind === 'payment')).toEqual([
      { userId, projection: 'token_accounts', kind: 'payment', detail: `payment ${declined.paymentId}: fold gives FAILED, read model holds PENDING` },
    ]);

    // Damage the payments rows the way a projection bug would: a wrong status, a lost row.
    await testApp.database.pool.query("UPDATE payments SET status = 'COMPLETED', metadata = '{}' WHERE id = $1", [declined.paymentId]);
    await testApp.database.pool.query('DELETE FROM payments WHERE id = $1', [pending.paymentId]);
    const differences = await admin.verifyAccount(userId);
    // The replayed rows (checked against the ledger's fold) against the stored ones: each damaged payments row shows.
    const shown = differences.map((difference) => `${difference.kind} ${difference.detail.slice(1, 37)} ${/,(PENDING|COMPLETED|FAILED|REFUNDED),/.exec(difference.detail)?.[1]}`);
    expect(shown.sort()).toEqual(
      [`missing ${declined.paymentId} FAILED`, `unexpected ${declined.paymentId} COMPLETED`, `missing ${pending.paymentId} PENDING`].sort(),
    );

    const racing = await Promise.all([
      ...Array.from({ length: 5 }, () => testApp.http().post(`/v1/admin/accounts/${userId}/rebuild`).expect(200)),
      ...Array.from({ length: 5 }, async () => {
        const bought = await buy();
        await capture(bought.paymentId).expect(200);
        return bought;
      }),
    ]);
    await caughtUp(testApp);
    const bought = racing.slice(5) as { paymentId: string }[];
    expect(await statuses()).toEqual({
      [completed.paymentId]: 'COMPLETED',
      [declined.paymentId]: 'FAILED',
      [refunded.paymentId]: 'REFUNDED',
      [pending.paymentId]: 'PENDING',
      ...Object.fromEntries(bought.map((payment) => [payment.paymentId, 'COMPLETED'])),
    });
    const declinedRow = await testApp.http().get(`/v1/payments/${declined.paymentId}`).expect(200);
    expect(declinedRow.body).toMatchObject({ status: 'FAILED', metadata: { error: 'card_declined' } });
    // starter is 100 tokens: one kept before, one refunded, five bought during the race.
    await testApp.http().get(`/v1/accounts/${userId}/balance`).expect(200, { userId, balance: 600, held: 0, available: 600, nextExpiry: null });
    expect(await admin.verifyAccount(userId)).toEqual([]);
  });

  it('rejects a malformed user id', async () => {
    const response = await testApp.http().post('/v1/admin/accounts/not-a-uuid/rebuild').expect(400);
    expect(response.body.errors).toEqual([expect.objectContaining({ field: 'userId', rule: 'isUuid' })]);
  });
});
