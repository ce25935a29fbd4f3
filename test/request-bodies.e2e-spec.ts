import { randomUUID } from 'node:crypto';
import { startTestApp, type TestApp } from './support/test-app.js';

/**
 * Bodies are JSON, parsed by the service's own parser: deep nesting is refused before anything walks
 * it (it used to overflow the stack in class-transformer and in the Idempotency-Key hash: 500), and
 * every other media type is 415 (a url-encoded form used to create a payment).
 */
let testApp: TestApp;

beforeAll(async () => {
  testApp = await startTestApp();
});

afterAll(async () => {
  await testApp.close();
});

async function count(sql: string, parameters: unknown[] = []): Promise<number> {
  const result = await testApp.database.pool.query<{ n: string }>(sql, parameters);
  return Number(result.rows[0]?.n);
}

function deeplyNested(depth: number): string {
  return `{"amount":1,"description":${'['.repeat(depth)}${']'.repeat(depth)}}`;
}

describe('JSON nesting', () => {
  it.each([33, 2_000, 20_000])('refuses a body nested %i levels with 400 BODY_TOO_DEEP, with or without an Idempotency-Key', async (depth) => {
    const userId = randomUUID();
    for (const key of [undefined, randomUUID()]) {
      const request = testApp.http().post(`/v1/accounts/${userId}/usage`).set('content-type', 'application/json');
      if (key !== undefined) void request.set('idempotency-key', key);
      const response = await request.send(deeplyNested(depth)).expect(400);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.body).toMatchObject({ code: 'BODY_TOO_DEEP', depthMax: 32 });
    }
    expect(await count('SELECT count(*) AS n FROM events WHERE stream_id = $1', [`token-account-${userId}`])).toBe(0);
    expect(await count('SELECT count(*) AS n FROM idempotency_keys')).toBe(0);
  });

  it('parses a body at the limit and lets validation judge it', async () => {
    const response = await testApp.http().post(`/v1/accounts/${randomUUID()}/usage`).set('content-type', 'application/json').send(deeplyNested(31)).expect(400);
    expect(response.body).toMatchObject({ code: 'VALIDATION_FAILED' });
  });
});

describe('media types', () => {
  it('refuses a url-encoded form with 415 and creates no payment', async () => {
    const userId = randomUUID();
    const user = await testApp.as('user', userId);
    const response = await user.post('/v1/payments').set('content-type', 'application/x-www-form-urlencoded').send(`userId=${userId}&packageId=starter`).expect(415);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.body).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE', contentType: 'application/x-www-form-urlencoded', accepted: 'application/json' });
    expect(await count('SELECT count(*) AS n FROM payment_streams')).toBe(0);
  });

  it.each(['text/plain', 'multipart/form-data; boundary=x', 'application/xml', 'application/json-patch+json', 'application/jsonx'])('refuses %s with 415', async (contentType) => {
    const response = await testApp.http().post(`/v1/accounts/${randomUUID()}/usage`).set('content-type', contentType).send('{"amount":1}').expect(415);
    expect(response.body).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE' });
  });

  it('accepts application/json with a charset', async () => {
    await testApp.http().post(`/v1/accounts/${randomUUID()}/purchases`).set('content-type', 'application/json; charset=utf-8').send(JSON.stringify({ paymentId: randomUUID(), amount: 5 })).expect(201);
  });
});
