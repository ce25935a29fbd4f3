import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createPool, migrateDatabase, startEmbeddedPostgres, type EmbeddedPostgresServer } from '@app/database';
import { freePort } from './support/service-process.js';
import { startTestAppOn, type TestApp } from './support/test-app.js';

/**
 * The service on a PostgreSQL of its own, which the test stops under it and starts again: while the
 * database is away every request that needs it answers 503 DATABASE_UNAVAILABLE with Retry-After
 * (never 500), and once it is back the same process serves again, without a restart.
 */
let parent: string;
let port: number;
let server: EmbeddedPostgresServer | undefined;
let instance: TestApp;

const DATABASE = 'token_ledger_outage';

async function startDatabase(): Promise<EmbeddedPostgresServer> {
  server = await startEmbeddedPostgres({ dataDir: path.join(parent, 'pg'), secretsDirectory: path.join(parent, 'secrets'), port, database: DATABASE, persistent: true });
  return server;
}

beforeAll(async () => {
  parent = await mkdtemp(path.join(tmpdir(), 'token-ledger-outage-'));
  // As root the server runs as the postgres user, who must be able to enter this directory.
  await chmod(parent, 0o755);
  port = await freePort();
  const { url } = await startDatabase();
  await migrateDatabase(url);
  const pool = createPool({ url, poolSizeMax: 5 });
  instance = await startTestAppOn({ url, pool, drop: () => pool.end() }, { PAYMENT_JOBS_ENABLED: 'false' });
}, 120_000);

afterAll(async () => {
  await instance?.close();
  await instance?.database.drop();
  await server?.stop();
  await rm(parent, { recursive: true, force: true });
});

function expectUnavailable(response: { status: number; headers: Record<string, string>; body: Record<string, unknown> }): void {
  expect({ status: response.status, code: response.body.code, retryAfter: response.headers['retry-after'] }).toEqual({ status: 503, code: 'DATABASE_UNAVAILABLE', retryAfter: '2' });
  expect(response.headers['content-type']).toContain('application/problem+json');
}

describe('the database stopped under a running service', () => {
  it('answers 503 DATABASE_UNAVAILABLE with Retry-After while it is down, and serves again once it is back', async () => {
    const userId = randomUUID();
    await instance.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 100 }).expect(201);
    await instance.http().get(`/v1/accounts/${userId}/balance`).expect(200);

    await server?.stop();
    server = undefined;
    const key = randomUUID();
    // A read, a write, a keyed write (its key cannot even be claimed) and an admin read.
    expectUnavailable(await instance.http().get(`/v1/accounts/${userId}/balance`));
    expectUnavailable(await instance.http().post(`/v1/accounts/${userId}/usage`).send({ amount: 10 }));
    expectUnavailable(await instance.http().post(`/v1/accounts/${userId}/usage`).set('Idempotency-Key', key).send({ amount: 30 }));
    expectUnavailable(await instance.http().get(`/v1/accounts/${userId}/transactions`));
    expectUnavailable(await instance.http().get('/v1/admin/projections'));
    // The health routes need no credentials: they say which check is down, not what the driver said (a host and port).
    for (const route of ['/health', '/health/ready']) {
      const health = await instance.anonymous().get(route).expect(503);
      expect(health.body.details.database).toEqual({ status: 'down', message: 'the database check could not be made: see the service\'s log' });
      expect(JSON.stringify(health.body)).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|connect/);
    }

    await startDatabase();
    const backAt = Date.now();
    let balance = await instance.http().get(`/v1/accounts/${userId}/balance`);
    while (balance.status !== 200 && Date.now() - backAt < 15_000) {
      expect(balance.status).toBe(503);
      await new Promise((resolve) => setTimeout(resolve, 200));
      balance = await instance.http().get(`/v1/accounts/${userId}/balance`);
    }
    expect(balance.body).toEqual({ userId, balance: 100, held: 0, available: 100, nextExpiry: null });
    // The keyed write refused while the database was away is applied once when retried.
    const retry = await instance.http().post(`/v1/accounts/${userId}/usage`).set('Idempotency-Key', key).send({ amount: 30 }).expect(201);
    expect(retry.body).toMatchObject({ balance: 70 });
    await instance.http().post(`/v1/accounts/${userId}/usage`).set('Idempotency-Key', key).send({ amount: 30 }).expect(201);
    await instance.http().get(`/v1/accounts/${userId}/balance`).expect(200, { userId, balance: 70, held: 0, available: 70, nextExpiry: null });
  }, 90_000);
});
