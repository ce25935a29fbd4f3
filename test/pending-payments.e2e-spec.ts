import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { startTestApp, startTestAppOn, testToken, type TestApp } from './support/test-app.js';

/**
 * At most PENDING_PAYMENTS_MAX open payments per user, decided on the user's stream: a user could
 * open unlimited PENDING payments (each a provider order). Racing initiations end exactly at the cap,
 * and a refused one writes nothing and reaches no provider.
 */
const PENDING_MAX = 5;
let testApp: TestApp;

beforeAll(async () => {
  testApp = await startTestApp({ PENDING_PAYMENTS_MAX: String(PENDING_MAX) });
});

afterAll(async () => {
  await testApp.close();
});

async function count(sql: string, parameters: unknown[]): Promise<number> {
  return Number((await testApp.database.pool.query<{ n: string }>(sql, parameters)).rows[0]?.n);
}

describe('open payments per user', () => {
  it(`lets exactly ${PENDING_MAX} of 30 racing initiations open a payment; the rest get 409 TOO_MANY_PENDING_PAYMENTS and leave nothing`, async () => {
    const userId = randomUUID();
    const user = await testApp.as('user', userId);
    const responses = await Promise.all(Array.from({ length: 30 }, () => user.post('/v1/payments').send({ userId, packageId: 'starter' })));
    const statuses = responses.map((response) => response.status).sort();
    expect(statuses.filter((status) => status === 201)).toHaveLength(PENDING_MAX);
    expect(statuses.filter((status) => status === 409)).toHaveLength(30 - PENDING_MAX);
    const refused = responses.find((response) => response.status === 409);
    expect(refused?.body).toMatchObject({ code: 'TOO_MANY_PENDING_PAYMENTS', pending: PENDING_MAX, max: PENDING_MAX });
    expect(await count("SELECT count(*) AS n FROM payments WHERE user_id = $1 AND status = 'PENDING'", [userId])).toBe(PENDING_MAX);
    expect(await count('SELECT count(*) AS n FROM payment_streams WHERE user_id = $1', [userId])).toBe(PENDING_MAX);
    const opened = responses.filter((response) => response.status === 201).map((response) => response.body.paymentId as string);
    expect(await count('SELECT count(*) AS n FROM mock_provider_orders WHERE payment_id = ANY($1::uuid[])', [opened])).toBe(PENDING_MAX);
    expect(await count('SELECT count(*) AS n FROM mock_provider_orders', [])).toBe(PENDING_MAX);

    // Capturing one frees a place; other users were never limited by this one.
    await user.post(`/v1/payments/${opened[0] ?? ''}/capture`).expect(200);
    await user.post('/v1/payments').send({ userId, packageId: 'starter' }).expect(201);
    await user.post('/v1/payments').send({ userId, packageId: 'starter' }).expect(409);
    const other = randomUUID();
    await (await testApp.as('user', other)).post('/v1/payments').send({ userId: other, packageId: 'starter' }).expect(201);
  });

  it('holds the cap across two instances on one database', async () => {
    const second = await startTestAppOn(testApp.database, { PENDING_PAYMENTS_MAX: String(PENDING_MAX) });
    try {
      const userId = randomUUID();
      const token = await testToken('user', userId);
      const responses = await Promise.all(
        Array.from({ length: 24 }, (_, index) => request((index % 2 === 0 ? testApp : second).app.getHttpServer()).post('/v1/payments').set('authorization', `Bearer ${token}`).send({ userId, packageId: 'starter' })),
      );
      expect(responses.filter((response) => response.status === 201)).toHaveLength(PENDING_MAX);
      expect(responses.filter((response) => response.status === 409 && response.body.code === 'TOO_MANY_PENDING_PAYMENTS')).toHaveLength(24 - PENDING_MAX);
      expect(await count("SELECT count(*) AS n FROM payments WHERE user_id = $1 AND status = 'PENDING'", [userId])).toBe(PENDING_MAX);
    } finally {
      await second.close();
    }
  });

  it('replays a keyed initiation at the cap instead of refusing it', async () => {
    const userId = randomUUID();
    const user = await testApp.as('user', userId);
    const key = randomUUID();
    const first = await user.post('/v1/payments').set('idempotency-key', key).send({ userId, packageId: 'starter' }).expect(201);
    for (let index = 1; index < PENDING_MAX; index += 1) await user.post('/v1/payments').send({ userId, packageId: 'starter' }).expect(201);
    const repeat = await user.post('/v1/payments').set('idempotency-key', key).send({ userId, packageId: 'starter' }).expect(201);
    expect(repeat.body.paymentId).toBe(first.body.paymentId);
  });
});
