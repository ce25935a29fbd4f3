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

  it.each(['text/plain', 'multipart/form-data; boundary=x', 'application/xml', 'application/json-patch+json', 'application/jsonx', 'application/json, text/plain', ','])(
    'refuses %s with 415 naming the type received and the one accepted',
    async (contentType) => {
      const response = await testApp.http().post(`/v1/accounts/${randomUUID()}/usage`).set('content-type', contentType).send('{"amount":1}').expect(415);
      expect(response.body).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE', contentType, accepted: 'application/json', detail: `a request body must be application/json, not ${contentType}` });
    },
  );

  it('accepts application/json with a charset', async () => {
    await testApp.http().post(`/v1/accounts/${randomUUID()}/purchases`).set('content-type', 'application/json; charset=utf-8').send(JSON.stringify({ paymentId: randomUUID(), amount: 5 })).expect(201);
  });
});

describe('routes that take no body', () => {
  /** Each route without a body, and how to see that a refused request left it undone. */
  async function routes(): Promise<{ readonly name: string; readonly method: 'post' | 'delete'; readonly path: string; readonly undone: () => Promise<void> }[]> {
    const userId = randomUUID();
    await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 100 }).expect(201);
    const hold = await testApp.http().post(`/v1/accounts/${userId}/holds`).send({ amount: 10 }).expect(201);
    const payment = await testApp.http().post('/v1/payments').send({ userId, packageId: 'starter' }).expect(201);
    const apiKey = await testApp.http().post('/v1/admin/api-keys').send({ name: `no body ${randomUUID()}`, role: 'service' }).expect(201);
    const holdStatus = async () => (await testApp.http().get(`/v1/accounts/${userId}/holds`).expect(200)).body.data[0].status as string;
    return [
      { name: 'release', method: 'post', path: `/v1/accounts/${userId}/holds/${hold.body.holdId}/release`, undone: async () => expect(await holdStatus()).toBe('active') },
      { name: 'capture', method: 'post', path: `/v1/payments/${payment.body.paymentId}/capture`, undone: async () => expect((await testApp.http().get(`/v1/payments/${payment.body.paymentId}`).expect(200)).body.status).toBe('PENDING') },
      { name: 'refund', method: 'post', path: `/v1/payments/${payment.body.paymentId}/refund`, undone: async () => expect((await testApp.http().get(`/v1/payments/${payment.body.paymentId}`).expect(200)).body.status).toBe('PENDING') },
      { name: 'account rebuild', method: 'post', path: `/v1/admin/accounts/${userId}/rebuild`, undone: async () => expect(await count('SELECT count(*) AS n FROM events WHERE stream_id = $1', [`token-account-${userId}`])).toBe(3) },
      { name: 'projection rebuild', method: 'post', path: '/v1/admin/projections/token_accounts/rebuild', undone: async () => expect(await count('SELECT count(*) AS n FROM projection_rebuilds')).toBe(0) },
      { name: 'API key revocation', method: 'delete', path: `/v1/admin/api-keys/${apiKey.body.id}`, undone: async () => expect(await count('SELECT count(*) AS n FROM api_keys WHERE id = $1 AND revoked_at IS NULL', [apiKey.body.id])).toBe(1) },
    ];
  }

  it('refuse a body with a property, as the refund does, naming it and doing nothing', async () => {
    for (const route of await routes()) {
      const response = await testApp.http()[route.method](route.path).set('content-type', 'application/json').send('{"foo":1}');
      expect([route.name, response.status, response.body.code]).toEqual([route.name, 400, 'VALIDATION_FAILED']);
      expect(response.body.errors.map((error: { field: string; rule: string }) => [error.field, error.rule])).toEqual([['foo', 'whitelistValidation']]);
      await route.undone();
    }
  });

  it.each([
    ['null', 'null'],
    ['an empty array', '[]'],
    ['an array of values', '[1,2]'],
    ['a number', '1'],
    ['a string', '"x"'],
    ['a boolean', 'true'],
    ['null after a byte-order mark', '\ufeffnull'],
  ])('refuse a JSON body that is %s, not an object, naming the body and doing nothing', async (_label, body) => {
    for (const route of await routes()) {
      const response = await testApp.http()[route.method](route.path).set('content-type', 'application/json').send(body);
      expect([route.name, response.status, response.body.code]).toEqual([route.name, 400, 'VALIDATION_FAILED']);
      expect(response.body.errors).toEqual([{ field: 'body', rule: 'isObject', message: expect.stringMatching(/^body must be a JSON object, not /) }]);
      await route.undone();
    }
  });

  it('take none, or an empty object', async () => {
    const [release, capture] = await routes();
    await testApp.http().post(release?.path ?? '').expect(200);
    await testApp.http().post(capture?.path ?? '').set('content-type', 'application/json').send('{}').expect(200);
  });
});

describe('routes that take a body', () => {
  it.each(['null', '[]', '[{"amount":1}]', '1', '"x"', 'true'])('refuse %s, naming the body as not an object (not "amount is required"), and write nothing', async (body) => {
    const userId = randomUUID();
    const response = await testApp.http().post(`/v1/accounts/${userId}/usage`).set('content-type', 'application/json').send(body).expect(400);
    expect(response.body).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ field: 'body', rule: 'isObject', message: expect.stringMatching(/^body must be a JSON object, not /) }] });
    expect(response.body.errors).toHaveLength(1);
    expect(await count('SELECT count(*) AS n FROM events WHERE stream_id = $1', [`token-account-${userId}`])).toBe(0);
  });
});

describe('JSON that is not valid', () => {
  it.each([
    ['a missing value', '{"amount":', /^body is not valid JSON at line 1, column 11: a value expected$/],
    ['a doubled comma', '{"amount": 3,,}', /^body is not valid JSON at line 1, column 14: a property name in double quotes expected$/],
    ['a trailing comma', '{"amount": 3,}', /^body is not valid JSON at line 1, column 14: a property name in double quotes expected$/],
    ['a comment', '{"amount": 3} // three', /^body is not valid JSON at line 1, column 15: a comment, which JSON does not allow$/],
    ['a break on the third line', '{\n  "amount": 3,\n  "description": tru\n}', /^body is not valid JSON at line 3, column 18: an unexpected character$/],
    ['a second value after the object', '{"amount":1} {}', /^body is not valid JSON at line 1, column 14: nothing may follow the value$/],
    ['an empty body', '', /^body is empty, which is not JSON: send a JSON object, or no body and no Content-Type$/],
    ['only white space', ' \n ', /^body is empty, which is not JSON: send a JSON object, or no body and no Content-Type$/],
  ])('refuses %s with 400 naming the body, the rule isJson and where the JSON breaks, and writes nothing', async (_, body, message) => {
    const userId = randomUUID();
    const response = await testApp.http().post(`/v1/accounts/${userId}/usage`).set('content-type', 'application/json').send(body).expect(400);
    expect(response.body).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ field: 'body', rule: 'isJson', message: expect.stringMatching(message) }] });
    expect(response.body.errors).toHaveLength(1);
    expect(await count('SELECT count(*) AS n FROM events WHERE stream_id = $1', [`token-account-${userId}`])).toBe(0);
  });

  it('counts the column in characters, as every other text rule does', async () => {
    const response = await testApp.http().post(`/v1/accounts/${randomUUID()}/usage`).set('content-type', 'application/json').send('{"description":"😀é","amount":}').expect(400);
    expect(response.body.errors).toEqual([{ field: 'body', rule: 'isJson', message: expect.stringMatching(/ at line 1, column 30: /) }]);
  });
});

describe('ambiguous or encoded JSON', () => {
  it.each([
    ['a property twice', '{"amount":1,"amount":2}'],
    ['a property twice, apart', '{"amount":1, "description":"a" ,\n "amount" :2}'],
    ['a property twice in a nested object', '{"amount":1,"metadata":{"a":"1","a":"2"}}'],
  ])('refuses %s (which value counts would be a guess) with 400 naming the body, and writes nothing', async (_, body) => {
    const userId = randomUUID();
    const response = await testApp.http().post(`/v1/accounts/${userId}/usage`).set('content-type', 'application/json').send(body).expect(400);
    expect(response.body).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ field: 'body', rule: 'uniquePropertyNames' }] });
    expect(await count('SELECT count(*) AS n FROM events WHERE stream_id = $1', [`token-account-${userId}`])).toBe(0);
  });

  it('accepts the same name in different objects, and a colon or quote inside strings', async () => {
    const userId = randomUUID();
    await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 5 }).expect(201);
    const body = '{"amount":1,"description":"amount: \\"x\\":1","metadata":{"amount":"1","description":"y"}}';
    await testApp.http().post(`/v1/accounts/${userId}/usage`).set('content-type', 'application/json').send(body).expect(201);
  });

  it('refuses a __proto__ property as a rule of its own, not as JSON that is not valid', async () => {
    for (const body of ['{"amount":1,"__proto__":{}}', '\ufeff{"amount":1,"__proto__":{}}']) {
      const response = await testApp.http().post(`/v1/accounts/${randomUUID()}/usage`).set('content-type', 'application/json').send(body).expect(400);
      expect(response.body).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ field: 'body', rule: 'noPrototypeKeys' }] });
    }
  });

  it('refuses a property named as one every object inherits, at any depth, naming its path, and writes nothing', async () => {
    // class-transformer skipped such a property unseen: `constructor` passed the whitelist, and metadata lost `valueOf`.
    const userId = randomUUID();
    await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 5 }).expect(201);
    const refusals = [
      ['{"amount":1,"constructor":"x"}', 'usage', 'constructor'],
      ['{"amount":1,"metadata":{"model":"m","valueOf":"v"}}', 'usage', 'metadata.valueOf'],
      ['{"amount":1,"metadata":{"toString":"t"}}', 'holds', 'metadata.toString'],
      ['{"amount":1,"hasOwnProperty":1}', 'holds', 'hasOwnProperty'],
    ] as const;
    for (const [body, route, field] of refusals) {
      const response = await testApp.http().post(`/v1/accounts/${userId}/${route}`).set('content-type', 'application/json').send(body).expect(400);
      expect([body, response.body.code, response.body.errors]).toEqual([body, 'VALIDATION_FAILED', [expect.objectContaining({ field, rule: 'noPrototypeKeys' })]]);
    }
    expect((await testApp.http().get(`/v1/accounts/${userId}/balance`).expect(200)).body).toMatchObject({ balance: 5, held: 0 });
    // A route that takes no body refuses it too; the names stay free as values.
    await testApp.http().post(`/v1/admin/accounts/${userId}/rebuild`).set('content-type', 'application/json').send('{"constructor":1}').expect(400);
    await testApp.http().post(`/v1/accounts/${userId}/usage`).send({ amount: 1, description: 'constructor', metadata: { model: 'toString' } }).expect(201);
  });

  it('refuses a compressed body with 415 naming its Content-Encoding', async () => {
    const response = await testApp
      .http()
      .post(`/v1/accounts/${randomUUID()}/usage`)
      .set('content-type', 'application/json')
      .set('content-encoding', 'gzip')
      .send(Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03]))
      .expect(415);
    expect(response.body).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE', contentEncoding: 'gzip' });
  });
});

describe('validation messages', () => {
  const violations = async (path: string, body: unknown) => {
    const response = await testApp.http().post(path).send(body as object).expect(400);
    expect(response.body.code).toBe('VALIDATION_FAILED');
    return (response.body.errors as { field: string; rule: string; message: string }[]).map(({ field, rule, message }) => [field, rule, message]);
  };

  it('say once that a missing field is required, not every rule its absence breaks, and write nothing', async () => {
    const userId = randomUUID();
    expect(await violations(`/v1/accounts/${userId}/usage`, {})).toEqual([['amount', 'isDefined', 'amount is required']]);
    expect(await violations(`/v1/accounts/${userId}/usage`, { amount: null })).toEqual([['amount', 'isDefined', 'amount is required']]);
    expect(await violations(`/v1/admin/accounts/${userId}/grants`, { amount: 10 })).toEqual([['reason', 'isDefined', 'reason is required']]);
    expect(await violations(`/v1/admin/accounts/${userId}/adjustments`, {})).toEqual([
      ['amount', 'isDefined', 'amount is required'],
      ['reason', 'isDefined', 'reason is required'],
    ]);
    expect(await violations('/v1/admin/api-keys', { role: 'service' })).toEqual([['name', 'isDefined', 'name is required']]);
    expect(await count('SELECT count(*) AS n FROM events WHERE stream_id = $1', [`token-account-${userId}`])).toBe(0);
  });

  it('say the type of a value of the wrong type, once', async () => {
    const userId = randomUUID();
    expect(await violations(`/v1/accounts/${userId}/usage`, { amount: '10' })).toEqual([['amount', 'isInt', 'amount must be an integer number']]);
    expect(await violations(`/v1/admin/accounts/${userId}/grants`, { amount: 10, reason: 5 })).toEqual([['reason', 'isString', 'reason must be a string']]);
    expect(await violations('/v1/admin/api-keys', { name: 1, role: 'service', scopes: 'usage:write' })).toEqual([
      ['name', 'isString', 'name must be a string'],
      ['scopes', 'isArray', 'scopes must be an array'],
    ]);
    expect((await testApp.http().post(`/v1/accounts/${userId}/usage`).send({ amount: '10' }).expect(400)).body.detail).toBe('amount must be an integer number');
  });

  it('keep every range and text rule a value of the right type breaks, and name unknown fields whatever their value', async () => {
    const userId = randomUUID();
    expect(await violations(`/v1/accounts/${userId}/usage`, { amount: 0 })).toEqual([['amount', 'min', 'amount must not be less than 1']]);
    expect(await violations(`/v1/accounts/${userId}/usage`, { amount: 9_007_199_254_740_992 })).toEqual([['amount', 'max', 'amount must not be greater than 9007199254740991']]);
    expect(await violations(`/v1/admin/accounts/${userId}/adjustments`, { amount: 0, reason: ' ' })).toEqual([
      ['amount', 'notEquals', 'amount must not be 0'],
      ['reason', 'isNotEmpty', 'reason must not be empty or blank'],
    ]);
    expect(await violations(`/v1/accounts/${userId}/usage`, { amount: 1, colour: null })).toEqual([['colour', 'whitelistValidation', 'property colour should not exist']]);
    // Blank as the ledger judges it: characters that show nothing, which `trim` leaves.
    for (const reason of ['\u0085', '\u200B', ' \u3164 ']) {
      expect(await violations(`/v1/admin/accounts/${userId}/adjustments`, { amount: 5, reason })).toEqual([['reason', 'isNotEmpty', 'reason must not be empty or blank']]);
      expect(await violations(`/v1/admin/accounts/${userId}/grants`, { amount: 5, reason })).toEqual([['reason', 'isNotEmpty', 'reason must not be empty or blank']]);
    }
    expect((await testApp.http().get(`/v1/accounts/${userId}/transactions`).expect(200)).body.data).toEqual([]);
  });
});
