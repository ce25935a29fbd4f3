import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { loadAuthConfig, resolveAuthSettings } from '@app/auth';
import { PostgresEventStore } from '@app/event-store';
import { ProjectionsLifecycle } from '@app/event-sourcing';
import { tokenAccountStreamId } from '@app/ledger';
import { pino } from 'pino';
import request from 'supertest';
import { loadConfig } from '../apps/api/src/config/app.config.js';
import { createApp } from '../apps/api/src/create-app.js';
import { ServiceMetrics } from '../apps/api/src/metrics/service-metrics.js';
import { startTestApp, TEST_JWT_SECRET, testToken, type TestApp } from './support/test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/** The operators' view of the app: metrics, liveness and readiness, CORS, and the request id on every log line. */

async function scrape(app: TestApp): Promise<string> {
  return (await app.app.get(ServiceMetrics).text()).body;
}

/** The value of one series of a scrape (0 when absent). */
function counted(text: string, series: string): number {
  const line = text.split('\n').find((each) => each.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

async function eventually(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('metrics', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp({ CREDIT_EXPIRY_JOB_INTERVAL_MS: '100', PAYMENT_JOB_INTERVAL_MS: '100' });
  });

  afterAll(async () => {
    await app.close();
  });

  it('counts requests by route template and status, commands by outcome code, and group-commit batches', async () => {
    const userId = randomUUID();
    await app.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 10 }).expect(201);
    await app.http().post(`/v1/accounts/${userId}/usage`).send({ amount: 11 }).expect(409);
    await app.http().get(`/v1/accounts/${userId}/balance`).expect(200);
    await app.http().get(`/v1/no-such-route/${randomUUID()}`).expect(404);

    const text = await scrape(app);
    expect(text).toContain('token_ledger_http_request_duration_seconds_count{method="GET",route="/v1/accounts/:userId/balance",status_code="200"} 1');
    expect(text).toContain('token_ledger_http_request_duration_seconds_count{method="POST",route="/v1/accounts/:userId/usage",status_code="409"} 1');
    // A URL that matched no route is one series, whatever its path: ids never become labels.
    expect(text).toContain('token_ledger_http_request_duration_seconds_count{method="GET",route="unmatched",status_code="404"} 1');
    expect(text).not.toContain(userId);
    expect(text).toContain('token_ledger_command_outcomes_total{route="/v1/accounts/:userId/purchases",outcome="ok"} 1');
    expect(text).toContain('token_ledger_command_outcomes_total{route="/v1/accounts/:userId/usage",outcome="INSUFFICIENT_BALANCE"} 1');
    expect(text).toMatch(/^token_ledger_group_commit_batch_appends_count [1-9]\d*$/m);
    expect(text).toMatch(/^token_ledger_group_commit_batch_appends_bucket\{le="1"\} [1-9]\d*$/m);
  });

  it('counts webhooks by provider and outcome', async () => {
    await app.anonymous().post('/v1/payments/webhooks/mock').set('content-type', 'application/json').send({ type: 'payment.captured', orderId: 'x' }).expect(401);
    const text = await scrape(app);
    expect(text).toMatch(/^token_ledger_webhooks_total\{provider="mock",outcome="[A-Z_]+"\} 1$/m);
  });

  it('reads projection lag and open payments at scrape', async () => {
    const userId = randomUUID();
    await app.http().post('/v1/payments').send({ userId, packageId: 'starter' }).expect(201);
    const text = await scrape(app);
    expect(text).toContain('token_ledger_payments_open{status="PENDING"} 1');
    expect(text).toContain('token_ledger_payments_open{status="REFUND_PENDING"} 0');
    expect(text).toMatch(/^token_ledger_projection_lag_seconds\{projection="token_accounts"\} [\d.e-]+$/m);
    expect(text).toMatch(/^token_ledger_projection_lag_events\{projection="token_accounts"\} \d+$/m);
  });

  it('counts the runs of the interval jobs by job and outcome', async () => {
    await eventually(async () => /^token_ledger_job_runs_total\{job="credit-expiry",outcome="succeeded"\} [1-9]/m.test(await scrape(app)));
    await eventually(async () => /^token_ledger_job_runs_total\{job="payment-expiry",outcome="succeeded"\} [1-9]/m.test(await scrape(app)));
    expect(await scrape(app)).toMatch(/^token_ledger_job_run_duration_seconds_count\{job="credit-expiry"\} [1-9]/m);
  });
});

describe('health', () => {
  let app: TestApp;

  beforeAll(async () => {
    // No projection runner here: the checkpoint stays where it is, so the read models fall behind on purpose.
    app = await startTestApp({ PROJECTIONS_ENABLED: 'false', READY_MAX_PROJECTION_LAG: '1s', READ_YOUR_WRITES_TIMEOUT_MS: '0' });
  });

  afterAll(async () => {
    await app.close();
  });

  it('is live and ready without credentials while the database answers, the schema is current and the read models keep up', async () => {
    expect((await app.anonymous().get('/health/live').expect(200)).body).toEqual({ status: 'ok', info: {}, error: {}, details: {} });
    const ready = await app.anonymous().get('/health/ready').expect(200);
    expect(ready.body.info).toEqual({
      database: { status: 'up' },
      migrations: { status: 'up' },
      readModels: { status: 'up', maxLagSeconds: 1, projections: { token_accounts: { state: 'stopped', lagSeconds: 0 } } },
    });
    expect((await app.anonymous().get('/health').expect(200)).body.info).toEqual({ database: { status: 'up' } });
  });

  it('is not ready while a projection is further behind than READY_MAX_PROJECTION_LAG, and still live', async () => {
    await app.http().post(`/v1/accounts/${randomUUID()}/purchases`).send({ paymentId: randomUUID(), amount: 5 }).expect(201);
    // Lag counts visible events only: another file's open transaction may hide the purchase for seconds.
    await eventually(async () => (await app.anonymous().get('/health/ready')).status === 503, 30_000);
    const ready = await app.anonymous().get('/health/ready').expect(503);
    // A problem (application/problem+json) whose `details` has every check, the failing one down.
    expect(ready.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(ready.body.details.database).toEqual({ status: 'up' });
    expect(ready.body.details.readModels.status).toBe('down');
    expect(ready.body.details.readModels.projections.token_accounts.lagSeconds).toBeGreaterThan(1);
    await app.anonymous().get('/health/live').expect(200);
    await app.anonymous().get('/health').expect(200);
  }, 60_000);

  it('is not ready while a migration of this build is not applied', async () => {
    const [latest] = (await app.database.pool.query<{ name: string }>('DELETE FROM pgmigrations WHERE id = (SELECT max(id) FROM pgmigrations) RETURNING name')).rows;
    try {
      const ready = await app.anonymous().get('/health/ready').expect(503);
      expect(ready.body).toMatchObject({ status: 503, code: 'SERVICE_UNAVAILABLE' });
      expect(ready.body.details.migrations).toEqual({ status: 'down', pending: [latest?.name] });
    } finally {
      await app.database.pool.query('INSERT INTO pgmigrations (name, run_on) VALUES ($1, now())', [latest?.name]);
    }
  });
});

describe('CORS', () => {
  let app: TestApp;
  const allowed = 'https://app.example.com';

  beforeAll(async () => {
    app = await startTestApp({ CORS_ORIGINS: `${allowed}, http://localhost:5173` });
  });

  afterAll(async () => {
    await app.close();
  });

  const preflight = (origin: string) =>
    app.anonymous().options(`/v1/accounts/${randomUUID()}/balance`).set('origin', origin).set('access-control-request-method', 'GET').set('access-control-request-headers', 'authorization');

  it('answers a preflight from an allowed origin, and a user reads their balance with their token', async () => {
    const answer = await preflight(allowed).expect(204);
    expect(answer.headers['access-control-allow-origin']).toBe(allowed);
    // Every request header the API reads: the credentials, the body's type, the retry key, the ids that trace it.
    expect(String(answer.headers['access-control-allow-headers']).split(/, */).sort()).toEqual(['Authorization', 'Content-Type', 'Idempotency-Key', 'X-API-Key', 'X-Correlation-Id', 'X-Request-Id']);
    expect(answer.headers['access-control-allow-methods']).toMatch(/GET/);

    const userId = randomUUID();
    const balance = await request(app.app.getHttpServer())
      .get(`/v1/accounts/${userId}/balance`)
      .set('origin', allowed)
      .set('authorization', `Bearer ${await testToken('user', userId)}`)
      .expect(200);
    expect(balance.headers['access-control-allow-origin']).toBe(allowed);
    // What a browser app may read of an answer: its request id, when to retry, where a 202's work is, whether it is a replay.
    expect(String(balance.headers['access-control-expose-headers']).split(/, */).sort()).toEqual(['Idempotent-Replayed', 'Location', 'Retry-After', 'X-Request-Id']);
  });

  it('gives a preflight from any other origin no permission, so the browser refuses it', async () => {
    const answer = await preflight('https://evil.example.com');
    // Without Access-Control-Allow-Origin naming it, the browser stops there.
    expect(answer.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('is off unless CORS_ORIGINS is set', async () => {
    const plain = await startTestApp();
    try {
      const answer = await plain.anonymous().options(`/v1/accounts/${randomUUID()}/balance`).set('origin', allowed).set('access-control-request-method', 'GET');
      expect(answer.status).toBe(404);
      expect(answer.headers['access-control-allow-origin']).toBeUndefined();
    } finally {
      await plain.close();
    }
  });
});

describe('request logs', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase();
  });

  afterAll(async () => {
    await database.drop();
  });

  it("puts the request id on a request's own lines: the 500's, with its stack, and the request completed line", async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n').filter((text) => text !== '')) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const settings = { NODE_ENV: 'test', AUTH_JWT_SECRET: TEST_JWT_SECRET, DATA_DIR: path.join(tmpdir(), 'token-ledger-test-data'), RATE_LIMIT_ENABLED: 'false' };
    const logger = pino({ level: 'info' }, sink);
    const app = await createApp({ config: loadConfig(settings), databaseUrl: database.url, logger, openApiUi: false, auth: await resolveAuthSettings(loadAuthConfig(settings)) });
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
    try {
      const userId = randomUUID();
      const operator = randomUUID();
      const token = `Bearer ${await testToken('admin', operator)}`;
      await request(app.getHttpServer()).post(`/v1/accounts/${userId}/purchases`).set('authorization', token).set('x-request-id', 'purchase-1').send({ paymentId: randomUUID(), amount: 3 }).expect(201);
      // A read model that is not there: an unexpected failure, logged with its stack as a 500.
      await database.pool.query('ALTER TABLE user_tokens RENAME TO user_tokens_elsewhere');
      const failed = await request(app.getHttpServer()).get(`/v1/accounts/${userId}/balance`).set('authorization', token).set('x-request-id', 'balance-1').expect(500);
      expect(failed.headers['x-request-id']).toBe('balance-1');
      await database.pool.query('ALTER TABLE user_tokens_elsewhere RENAME TO user_tokens');

      const errorLine = lines.find((line) => line.level === 50);
      expect(errorLine).toMatchObject({ requestId: 'balance-1', context: 'HTTP', stack: expect.stringContaining('user_tokens') });
      expect(lines.filter((line) => line.requestId === 'balance-1').map((line) => line.msg)).toEqual([expect.stringContaining('failed'), 'request completed']);
      expect(lines.filter((line) => line.requestId === 'purchase-1').map((line) => line.msg)).toEqual(['request completed']);
      // Who made it: the line is the record of who did what (the credential, never its secret).
      expect(lines.find((line) => line.requestId === 'purchase-1')).toMatchObject({ caller: `jwt:${operator}`, role: 'admin', statusCode: 201 });
      await request(app.getHttpServer()).get('/health/live').set('x-request-id', 'live-1').expect(200);
      expect(lines.find((line) => line.requestId === 'live-1')).not.toHaveProperty('caller');
      expect(JSON.stringify(lines)).not.toContain(token.slice('Bearer '.length));
      // A whole API key pasted where its id goes (the CLI's revoke takes either; the route, the id): refused, and its secret kept out of the log.
      const pasted = `tlk_${'a1'.repeat(12)}_${'S'.repeat(43)}`;
      await request(app.getHttpServer()).delete(`/v1/admin/api-keys/${pasted}`).set('authorization', token).set('x-request-id', 'pasted-1').expect(400);
      expect(lines.find((line) => line.requestId === 'pasted-1')).toMatchObject({ url: `/v1/admin/api-keys/tlk_${'a1'.repeat(12)}_[secret removed]`, statusCode: 400 });
      expect(JSON.stringify(lines)).not.toContain('S'.repeat(43));
      // One with a mistyped id (an upper-case hex digit) is left out whole.
      await request(app.getHttpServer()).delete(`/v1/admin/api-keys/tlk_${'A1'.repeat(12)}_${'T'.repeat(43)}`).set('authorization', token).set('x-request-id', 'pasted-2').expect(400);
      expect(lines.find((line) => line.requestId === 'pasted-2')).toMatchObject({ url: '/v1/admin/api-keys/[removed]' });
      expect(JSON.stringify(lines)).not.toContain('T'.repeat(43));
      // Lines outside any request carry none.
      expect(lines.filter((line) => line.requestId === undefined).every((line) => line.msg !== 'request completed')).toBe(true);
    } finally {
      await app.close();
    }
  });
});

describe('metrics of a projection that cannot apply an event', () => {
  let app: TestApp;
  let foreign: PostgresEventStore;

  beforeAll(async () => {
    app = await startTestApp();
    // A store without the inline projection, as a writer outside the service would append: the runner applies its events.
    foreign = new PostgresEventStore(app.database.pool, { connectionString: app.database.url });
  });

  afterAll(async () => {
    await foreign.close();
    await app.close();
  });

  it('counts each failed try of an event, once a try, and the slower pass the runner fell back to before it', async () => {
    const before = await scrape(app);
    const series = {
      event: 'token_ledger_projection_failures_total{projection="token_accounts",cause="event"}',
      other: 'token_ledger_projection_failures_total{projection="token_accounts",cause="other"}',
      eventByEvent: 'token_ledger_projection_fallbacks_total{projection="token_accounts",from="event-by-event"}',
      setBased: 'token_ledger_projection_fallbacks_total{projection="token_accounts",from="set-based"}',
    };
    // Every series is there at 0 before anything failed.
    for (const each of Object.values(series)) expect(before).toContain(`${each} 0`);
    const userId = randomUUID();
    // A purchase whose payment id is no UUID: its statements fail in PostgreSQL (a data error), not in the projection's code.
    const data = { userId, transactionId: randomUUID(), paymentId: 'not-a-uuid', amount: 5, description: null, balanceAfter: 5, occurredAt: new Date().toISOString() };
    await foreign.append(tokenAccountStreamId(userId), [{ id: randomUUID(), type: 'TokensPurchased', data }], { expectedRevision: 'no_stream' });
    await eventually(async () => counted(await scrape(app), series.event) >= 2, 20_000);
    // Stopped, its counts and the stored failure's attempts hold still and can be compared.
    const runner = app.app.get(ProjectionsLifecycle).tokenAccounts;
    await runner.stop();
    const text = await scrape(app);
    const stored = await app.database.pool.query<{ attempts: number }>("SELECT attempts FROM projection_failures WHERE name = 'token_accounts'");
    expect(counted(text, series.event)).toBe(stored.rows[0]?.attempts);
    expect(counted(text, series.other)).toBe(0);
    // Each try: its round trip failed, so it went one statement at a time, and failed naming the event
    // (a stop between the two steps of a try counts its fall back without its failure).
    expect(counted(text, series.eventByEvent) - counted(text, series.event)).toBeGreaterThanOrEqual(0);
    expect(counted(text, series.eventByEvent) - counted(text, series.event)).toBeLessThanOrEqual(1);
    expect(counted(text, series.setBased)).toBe(0);
    const status = (await app.http().get('/v1/admin/projections').expect(200)).body as { data: { name: string; state: string; failure: { eventType: string } | null }[] };
    expect(status.data.find((projection) => projection.name === 'token_accounts')).toMatchObject({ state: 'failed', failure: { eventType: 'TokensPurchased' } });
  }, 60_000);
});
