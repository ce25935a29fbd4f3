import { randomUUID } from 'node:crypto';
import { startTestApp, type TestApp } from './support/test-app.js';

/**
 * Rate limits per credential and per client address: 429 RATE_LIMITED problem details with
 * Retry-After, and the limited request does nothing. There were none.
 */
let testApp: TestApp;

beforeAll(async () => {
  testApp = await startTestApp({ RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_PER_CREDENTIAL_MAX: '4', RATE_LIMIT_PER_IP_MAX: '12', RATE_LIMIT_WINDOW_SECONDS: '60' });
});

afterAll(async () => {
  await testApp.close();
});

async function eventCount(userId: string): Promise<number> {
  return Number((await testApp.database.pool.query<{ n: string }>('SELECT count(*) AS n FROM events WHERE stream_id = $1', [`token-account-${userId}`])).rows[0]?.n);
}

describe('rate limits', () => {
  it('gives one credential its limit, then 429 with Retry-After and nothing written; another credential is unaffected', async () => {
    const userId = randomUUID();
    const service = await testApp.as('service');
    for (let index = 0; index < 4; index += 1) await service.post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 1 }).expect(201);
    const limited = await service.post(`/v1/accounts/${userId}/purchases`).set('idempotency-key', randomUUID()).send({ paymentId: randomUUID(), amount: 1 }).expect(429);
    expect(limited.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(limited.body).toMatchObject({ code: 'RATE_LIMITED', limit: 'credential', max: 4, windowSeconds: 60 });
    expect(await eventCount(userId)).toBe(4);
    const idempotencyKeys = await testApp.database.pool.query('SELECT 1 FROM idempotency_keys');
    expect(idempotencyKeys.rowCount).toBe(0);
    await (await testApp.as('service')).get(`/v1/accounts/${userId}/balance`).expect(200);
  });

  it('limits one client address across credentials and on public routes, but never the health probes', async () => {
    // 4 + 1 + 1 requests so far from this address; 6 more reach the address limit of 12.
    for (let index = 0; index < 6; index += 1) await testApp.anonymous().get('/v1/packages').expect((response) => expect(response.status).not.toBe(429));
    const limited = await (await testApp.as('admin')).get(`/v1/accounts/${randomUUID()}/balance`).expect(429);
    expect(limited.body).toMatchObject({ code: 'RATE_LIMITED', limit: 'address', max: 12 });
    expect(limited.headers['retry-after']).toMatch(/^\d+$/);
    await testApp.anonymous().get('/v1/packages').expect(429);
    // A probe from the limited address still gets its answer: a 429 would restart a healthy process.
    for (let index = 0; index < 20; index += 1) {
      for (const probe of ['/health', '/health/live', '/health/ready']) await testApp.anonymous().get(probe).expect((response) => expect(response.status).not.toBe(429));
    }
  });
});
