import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiKeyRepository, ENDPOINT_ACTIONS, type Endpoint } from '@app/auth';
import { startTestApp, TEST_ADMIN_SUBJECT, testToken, type TestApp } from './support/test-app.js';

/**
 * Bad input at every route, as an attacker or a careless client sends it: malformed and deep JSON,
 * huge and unsafe numbers, wrong types, bad UUIDs, foreign content types, oversize bodies, bad
 * headers and Unicode edge cases. Every answer must be a 4xx problem (never a 500: 9 of 201 such
 * inputs used to be one) and nothing may be written. Each request spoils exactly one part of an
 * otherwise valid request, so only that part can be what is refused.
 */
let testApp: TestApp;
let valid: { userId: string; paymentId: string; apiKeyId: string };

const TABLES = ['events', 'event_streams', 'payment_streams', 'idempotency_keys', 'api_keys', 'mock_provider_orders', 'projection_rebuilds', 'token_transactions', 'payments', 'user_tokens'];

beforeAll(async () => {
  testApp = await startTestApp();
  const userId = randomUUID();
  await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 1_000 }).expect(201);
  const payment = await testApp.http().post('/v1/payments').send({ userId, packageId: 'starter' }).expect(201);
  const apiKey = await new ApiKeyRepository(testApp.database.pool).create({ name: 'bad input', role: 'service' });
  valid = { userId, paymentId: payment.body.paymentId as string, apiKeyId: apiKey.record.id };
});

afterAll(async () => {
  await testApp.close();
});

async function rowCounts(): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of TABLES) counts[table] = Number((await testApp.database.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]?.n);
  return counts;
}

/** One spoiled request: what to send, raw, so that no client library tidies it up. */
type Attempt = {
  readonly label: string;
  readonly method: string;
  readonly path: string;
  readonly body?: string | Buffer;
  readonly headers?: Record<string, string>;
};

const ASTRAL_501 = '\u{1F389}'.repeat(501);
const BAD_UUIDS = ['not-a-uuid', '12345', '00000000-0000-0000-0000-00000000000g', 'ffffffff-ffff-ffff-ffff-ffffffffffff0', '%00', '%F0%9F%8E%89', '%ED%A0%80', '%FF', 'a'.repeat(2_000), '..%2F..%2Fhealth', "1'%20OR%20'1'%3D'1"];

/** The valid body of each route that takes one, and its fields' invalid values (raw JSON text). */
const BODIES: Record<string, { readonly valid: () => Record<string, unknown>; readonly fields: Record<string, readonly string[]> }> = {
  'POST /v1/accounts/{userId}/usage': {
    valid: () => ({ amount: 1, description: 'fuzz' }),
    fields: { amount: amounts(['-1']), description: texts(), metadata: metadatas() },
  },
  'POST /v1/accounts/{userId}/purchases': {
    valid: () => ({ paymentId: randomUUID(), amount: 1, description: 'fuzz' }),
    fields: { paymentId: uuids(), amount: amounts(['-1', '1000001']), description: texts() },
  },
  'POST /v1/payments': {
    valid: () => ({ userId: valid.userId, packageId: 'starter' }),
    fields: { userId: uuids(), packageId: ['null', '1', '""', '"Starter"', `"${'x'.repeat(1_000)}"`, '"\\ud800"', '"star\\u0000ter"', '["starter"]', '{"id":"starter"}', '"no-such-package"'] },
  },
  'POST /v1/admin/accounts/{userId}/adjustments': {
    valid: () => ({ amount: 1, reason: 'fuzz' }),
    fields: { amount: amounts([]), reason: [...texts(), 'null', '""', '"   "'] },
  },
  'POST /v1/accounts/{userId}/holds': {
    valid: () => ({ amount: 1, description: 'fuzz' }),
    fields: { amount: amounts(['-1']), description: texts(), expiresInSeconds: ['0', '-1', '1.5', '"60"', 'true', '[]', '100000000', '9007199254740993'], metadata: metadatas() },
  },
  'POST /v1/accounts/{userId}/holds/{holdId}/settle': {
    valid: () => ({ amount: 1, description: 'fuzz' }),
    fields: { amount: amounts(['-1']), description: texts(), metadata: metadatas() },
  },
  'POST /v1/admin/accounts/{userId}/grants': {
    valid: () => ({ amount: 1, reason: 'fuzz' }),
    fields: {
      amount: amounts([]),
      reason: [...texts(), 'null', '""', '"   "'],
      priority: ['-1', '1.5', '"1"', 'true', '1000001'],
      expiresAt: ['"2001-01-01T00:00:00Z"', '"tomorrow"', '1', '"2099-02-30T00:00:00Z"'],
    },
  },
  'POST /v1/admin/accounts/{userId}/grants/{lotId}/void': {
    valid: () => ({ reason: 'fuzz' }),
    fields: { reason: [...texts(), 'null', '""', '"   "'] },
  },
  'POST /v1/admin/api-keys': {
    valid: () => ({ name: `fuzz ${randomUUID()}`, role: 'service' }),
    fields: {
      name: ['null', '1', '""', `"${'x'.repeat(101)}"`, '"a\\u0000b"', '"\\udfff"', '["x"]'],
      role: ['null', '"user"', '"root"', '1', '["admin"]', '"Admin"'],
      scopes: ['"usage:write"', '[]', '["everything"]', '[1]', '{}', '["usage:write","usage:write"]', '["audit:read"]'],
      expiresAt: ['"2001-01-01T00:00:00Z"', '"tomorrow"', '1', '"2099-01-01"', '"2099-01-01T00:00:00"', '"2099-02-30T00:00:00Z"'],
    },
  },
};

function amounts(extra: readonly string[]): string[] {
  return ['null', 'true', '"1"', '""', '[]', '{}', '[1]', '1.5', '0', '-0.5', '1e400', '-1e400', '9007199254740992', '9007199254740993', '-9007199254740993', '1e21', '"NaN"', '"Infinity"', '"0x10"', '0.99999999999999999', '1.0000000000000001', ...extra];
}

function uuids(): string[] {
  return ['null', '1', '""', '[]', '{}', ...BAD_UUIDS.filter((uuid) => !uuid.includes('%')).map((uuid) => JSON.stringify(uuid)), '"\\ud800"', '"0000000\\u0000-0000-4000-8000-000000000000"'];
}

/** Metadata that breaks one rule each (object, keys, key format, value type, length, text). */
function metadatas(): string[] {
  const tooMany = JSON.stringify(Object.fromEntries(Array.from({ length: 21 }, (_, index) => [`k${index}`, index])));
  return ['1', '"x"', '[]', 'true', tooMany, '{"":1}', '{"a b":1}', `{"${'k'.repeat(41)}":1}`, '{"a":{"b":1}}', '{"a":[1]}', '{"a":null}', `{"a":${JSON.stringify('x'.repeat(501))}}`, '{"a":"x\\u0000"}', '{"a":"\\ud800"}'];
}

function texts(): string[] {
  return ['1', 'true', '[]', '{}', '["x"]', '"a\\u0000b"', '"\\ud800"', '"\\udc00 x"', '"x\\ud83d"', JSON.stringify('x'.repeat(501)), JSON.stringify(ASTRAL_501), JSON.stringify(`${'e\u0301'.repeat(250)}x`)];
}

/** The body text of a route's valid body with one field replaced by raw JSON text. */
function withField(body: Record<string, unknown>, field: string, raw: string): string {
  const marker = '"__FUZZ_VALUE__"';
  return JSON.stringify({ ...body, [field]: '__FUZZ_VALUE__' }).replace(marker, raw);
}

/** Cursors that are no list's nextCursor, and a cursor beside an offset. */
const CURSORS = ['cursor=', 'cursor=x', 'cursor=%00', 'cursor=abc%2B%2F', `cursor=${'A'.repeat(600)}`, 'cursor[]=x', 'cursor=a&cursor=b', `cursor=${Buffer.from('{"v":1,"l":"x","s":"y","k":[]}').toString('base64url')}&offset=1`];

/** Invalid values for each query parameter of the routes that take one. */
const QUERIES: Record<string, readonly string[]> = {
  'GET /v1/accounts/{userId}/transactions': ['limit=0', 'limit=101', 'limit=1e309', 'limit=-1', 'limit=1.5', 'limit=abc', 'limit=0x10', 'limit=1&limit=2', 'limit[]=1', 'limit[a]=1', 'offset=-1', 'offset=9007199254740993', 'offset=1e400', 'unknown=1', 'limit=%00', 'limit=%F0%9F%8E%89', ...CURSORS],
  'GET /v1/accounts/{userId}/payments': ['status=pending', 'status=DONE', 'status[$ne]=x', 'status=PENDING&status=FAILED', 'limit=0', 'limit=9007199254740993', 'offset=x', 'unknown=1', ...CURSORS],
  'GET /v1/accounts/{userId}/holds': ['status=open', 'limit=0', 'offset=-1', ...CURSORS],
  'GET /v1/accounts/{userId}/lots': ['status=live', 'limit=101', 'offset=x', ...CURSORS],
  'GET /v1/audit/accounts/{userId}/events': ['fromRevision=-1', 'fromRevision=1e400', 'fromRevision=9007199254740993', 'limit=0', 'limit=100000', 'format=xml', 'format=json&format=ndjson', 'unknown=1'],
  'GET /v1/audit/accounts/{userId}/balance': ['at=2030-13-45T00:00:00Z', 'at=yesterday', 'at=2030-01-01T00:00:00', 'revision=-1', 'revision=1.5', 'revision=99999999999999999999999', 'at=2030-01-01T00:00:00Z&revision=1', 'at=', 'at[]=x', 'revision=0&revision=1'],
};

/** Header spoilers for a POST: each alone makes the request invalid. */
const BAD_HEADERS: readonly [string, Record<string, string>][] = [
  ['an empty Idempotency-Key', { 'idempotency-key': '' }],
  ['an Idempotency-Key of 256 characters', { 'idempotency-key': 'k'.repeat(256) }],
  ['an Idempotency-Key with a space', { 'idempotency-key': 'a b' }],
  ['an Idempotency-Key with Latin-1', { 'idempotency-key': 'cl\u00e9' }],
  ['a malformed bearer token', { authorization: 'Bearer not.a.jwt' }],
  ['a Basic authorization', { authorization: 'Basic YWRtaW46YWRtaW4=' }],
  ['an unsigned token (alg none)', { authorization: `Bearer ${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: randomUUID(), exp: 4_102_444_800, app_metadata: { roles: ['admin'] } })).toString('base64url')}.` }],
  ['a malformed API key', { 'x-api-key': 'tlk_nothing' }],
  ['both credentials', { 'x-api-key': 'tlk_0123456789abcdef01234567_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' }],
];

/** Content types other than JSON, each with the route's valid body. */
const BAD_CONTENT_TYPES = ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'application/json-patch+json', 'application/octet-stream', 'text/json'];

/** Whole bodies that are not the route's body at all. */
const BAD_BODIES: readonly [string, string | Buffer][] = [
  ['invalid JSON', '{"amount":'],
  ['an empty body', ''],
  ['JSON null', 'null'],
  ['a JSON array', '[]'],
  ['a JSON string', '"x"'],
  ['a JSON number', '1'],
  ['nesting 2,000 deep', `{"x":${'['.repeat(2_000)}${']'.repeat(2_000)}}`],
  ['nesting 33 deep', `{"x":${'{"y":'.repeat(32)}1${'}'.repeat(32)}}`],
  ['a __proto__ key', '{"__proto__":{"admin":true}}'],
  ['a constructor.prototype key', '{"constructor":{"prototype":{"admin":true}}}'],
  ['a body of 70 KB', JSON.stringify({ padding: 'x'.repeat(70 * 1024) })],
  ['invalid UTF-8', Buffer.concat([Buffer.from('{"x":"'), Buffer.from([0xff, 0xfe, 0xc0]), Buffer.from('"}')])],
  ['a byte-order mark', '\ufeff{}'],
];

function pathOf(endpoint: Endpoint, spoil?: { readonly param: string; readonly value: string }): string {
  const values: Record<string, string> = { userId: valid.userId, paymentId: valid.paymentId, name: 'token_accounts', holdId: randomUUID(), lotId: randomUUID(), id: endpoint.path.includes('api-keys') ? valid.apiKeyId : randomUUID() };
  return endpoint.path.replace(/\{(\w+)\}/g, (_match, param: string) => (spoil?.param === param ? spoil.value : (values[param] ?? '')));
}

function attemptsFor(endpoint: Endpoint): Attempt[] {
  const key = `${endpoint.method} ${endpoint.path}`;
  const attempts: Attempt[] = [];
  const bodyRule = BODIES[key];
  const validBody = endpoint.method === 'POST' ? JSON.stringify(bodyRule?.valid() ?? {}) : undefined;
  const json: Record<string, string> = validBody === undefined ? {} : { 'content-type': 'application/json' };
  for (const param of [...endpoint.path.matchAll(/\{(\w+)\}/g)].map((match) => match[1] ?? '')) {
    const bad = param === 'name' ? ['Token_Accounts', 'x'.repeat(100), '%00', 'token-accounts', '%F0%9F%8E%89'] : BAD_UUIDS;
    for (const value of bad) attempts.push({ label: `${param}=${value.slice(0, 40)}`, method: endpoint.method, path: pathOf(endpoint, { param, value }), body: validBody, headers: json });
  }
  for (const query of QUERIES[key] ?? []) attempts.push({ label: `?${query}`, method: endpoint.method, path: `${pathOf(endpoint)}?${query}` });
  // A query parameter the route does not take, beside an otherwise valid request: refused, never ignored.
  attempts.push({ label: 'an unknown query parameter', method: endpoint.method, path: `${pathOf(endpoint)}?unknown=1`, body: validBody, headers: json });
  const public_ = endpoint.path.startsWith('/v1/payments/webhooks/');
  for (const [label, headers] of BAD_HEADERS) {
    if (public_ && label !== 'an empty Idempotency-Key') continue;
    if (endpoint.method !== 'POST' && headers['idempotency-key'] !== undefined) continue;
    attempts.push({ label, method: endpoint.method, path: pathOf(endpoint), body: validBody, headers: { ...json, ...headers } });
  }
  if (endpoint.method !== 'POST') return attempts;
  for (const type of BAD_CONTENT_TYPES) attempts.push({ label: `content-type ${type}`, method: 'POST', path: pathOf(endpoint), body: validBody, headers: { 'content-type': type } });
  attempts.push({ label: 'a body without a content type', method: 'POST', path: pathOf(endpoint), body: validBody });
  for (const [label, body] of BAD_BODIES) {
    // Routes without a body take none or an empty object (EmptyBody): `{}` after a byte-order mark,
    // which the parser skips, is one. Every other JSON value that is not an object is refused.
    if (bodyRule === undefined && label === 'a byte-order mark') continue;
    attempts.push({ label, method: 'POST', path: pathOf(endpoint), body, headers: json });
  }
  attempts.push({ label: 'an unknown field', method: 'POST', path: pathOf(endpoint), body: JSON.stringify({ ...(bodyRule?.valid() ?? {}), unknown: 1 }), headers: json });
  if (bodyRule !== undefined) {
    attempts.push({ label: 'every field missing', method: 'POST', path: pathOf(endpoint), body: '{}', headers: json });
    for (const [field, values] of Object.entries(bodyRule.fields)) {
      for (const raw of values) attempts.push({ label: `${field}: ${raw.slice(0, 40)}`, method: 'POST', path: pathOf(endpoint), body: withField(bodyRule.valid(), field, raw), headers: json });
    }
  }
  return attempts;
}

/** Sends exactly these bytes and headers (no client adds a content type or re-encodes the body). */
function send(attempt: Attempt, port: number, token: string): Promise<{ status: number; contentType: string; text: string }> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, ...(attempt.headers ?? {}) };
  if (attempt.headers?.['x-api-key'] !== undefined && attempt.label !== 'both credentials') delete headers.authorization;
  const body = attempt.body === undefined ? undefined : typeof attempt.body === 'string' ? Buffer.from(attempt.body, 'utf8') : attempt.body;
  if (body !== undefined) headers['content-length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, method: attempt.method, path: attempt.path, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, contentType: String(response.headers['content-type'] ?? ''), text: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** The answer's fault, if any: anything but a 4xx RFC 9457 problem whose status matches. */
async function faultOf(attempt: Attempt, port: number, token: string): Promise<string | undefined> {
  const response = await send(attempt, port, token);
  let body: { status?: unknown; code?: unknown } = {};
  try {
    body = JSON.parse(response.text) as typeof body;
  } catch {
    body = {};
  }
  const problem = /^application\/problem\+json/.test(response.contentType);
  const fine = response.status >= 400 && response.status < 500 && problem && body.status === response.status && typeof body.code === 'string';
  return fine ? undefined : `${attempt.method} ${attempt.path.slice(0, 80)} [${attempt.label}]: ${response.status} ${response.text.slice(0, 160)}`;
}

describe('bad input at every route', () => {
  let port: number;
  let token: string;
  beforeAll(async () => {
    await testApp.app.listen(0, '127.0.0.1');
    port = (testApp.app.getHttpServer().address() as AddressInfo).port;
    token = await testToken('admin', TEST_ADMIN_SUBJECT);
  });

  const routes = [...ENDPOINT_ACTIONS, { method: 'POST', path: '/v1/payments/webhooks/mock', action: 'payment.create', owner: 'none' } as const];

  it.each(routes.map((endpoint) => [`${endpoint.method} ${endpoint.path}`, endpoint] as const))('%s answers every spoiled request with a 4xx problem and writes nothing', async (_name, endpoint) => {
    const before = await rowCounts();
    const attempts = attemptsFor(endpoint);
    expect(attempts.length).toBeGreaterThanOrEqual(endpoint.method === 'POST' ? 15 : 5);
    const faults: string[] = [];
    for (const attempt of attempts) {
      const fault = await faultOf(attempt, port, token);
      if (fault !== undefined) faults.push(fault);
    }
    expect(faults).toEqual([]);
    expect(await rowCounts()).toEqual(before);
  }, 60_000);
});

describe('a number the JSON parser would round', () => {
  it('is refused 400 naming its property and the rule, not taken as the integer it reads as, and nothing is written', async () => {
    const userId = randomUUID();
    await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 100 }).expect(201);
    const before = await rowCounts();
    const post = (body: string) => testApp.http().post(`/v1/accounts/${userId}/usage`).set('content-type', 'application/json').send(body);
    expect((await post('{"amount":0.99999999999999999}').expect(400)).body).toMatchObject({
      code: 'VALIDATION_FAILED',
      errors: [{ field: 'amount', rule: 'exactNumbers', message: expect.stringMatching(/^amount is 0\.99999999999999999, which a number cannot hold exactly/) }],
    });
    expect((await post('{"amount":1,"metadata":{"orderRef":9007199254740993}}').expect(400)).body.errors).toEqual([expect.objectContaining({ field: 'metadata.orderRef', rule: 'exactNumbers' })]);
    // Zero written with a long exponent is exactly zero: refused by the rule it breaks.
    expect((await post('{"amount":0e401}').expect(400)).body.errors).toEqual([expect.objectContaining({ field: 'amount', rule: 'min' })]);
    expect(await rowCounts()).toEqual(before);
    expect((await post('{"amount":1,"metadata":{"n":0e999}}').expect(201)).body).toMatchObject({ balance: 99 });
    // Written exactly, an integer with a point is the integer.
    expect((await post('{"amount":1.0}').expect(201)).body).toMatchObject({ balance: 98 });
  });
});

describe('a query parameter a route does not take', () => {
  it.each(ENDPOINT_ACTIONS.filter((endpoint) => !endpoint.path.startsWith('/v1/payments/webhooks/')).map((endpoint) => [`${endpoint.method} ${endpoint.path}`, endpoint] as const))(
    '%s refuses ?unknown=1 with 400 naming it, before its path or body is judged',
    async (_name, endpoint) => {
      const path = `${pathOf(endpoint)}?unknown=1`;
      const request = endpoint.method === 'GET' ? testApp.http().get(path) : endpoint.method === 'DELETE' ? testApp.http().delete(path) : testApp.http().post(path).send(BODIES[`${endpoint.method} ${endpoint.path}`]?.valid() ?? {});
      const answer = await request.expect(400);
      expect(answer.body).toMatchObject({ code: 'VALIDATION_FAILED', errors: [expect.objectContaining({ field: 'unknown', rule: 'whitelistValidation' })] });
    },
  );


  it('is refused 400 naming it, before anything is done: a refund with ?amount= is not carried out whole, a hold with ?expiresInSeconds= is not placed', async () => {
    const userId = randomUUID();
    await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 100 }).expect(201);
    const payment = (await testApp.http().post('/v1/payments').send({ userId, packageId: 'starter' }).expect(201)).body as { paymentId: string };
    await testApp.http().post(`/v1/payments/${payment.paymentId}/capture`).send().expect(200);
    const before = await rowCounts();
    const refund = await testApp.http().post(`/v1/payments/${payment.paymentId}/refund?amount=100`).send().expect(400);
    expect(refund.body).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ field: 'amount', rule: 'whitelistValidation', message: 'query parameter amount should not exist: this route takes none' }] });
    const hold = await testApp.http().post(`/v1/accounts/${userId}/holds?expiresInSeconds=60&reason=x`).send({ amount: 5 }).expect(400);
    expect(hold.body.errors.map((error: { field: string; rule: string }) => [error.field, error.rule])).toEqual([
      ['expiresInSeconds', 'whitelistValidation'],
      ['reason', 'whitelistValidation'],
    ]);
    await testApp.http().get(`/v1/accounts/${userId}/balance?at=2026-01-01T00:00:00Z`).expect(400);
    expect(await rowCounts()).toEqual(before);
    expect((await testApp.http().get(`/v1/payments/${payment.paymentId}`).expect(200)).body).toMatchObject({ status: 'COMPLETED' });
    // A route that takes a query still judges it by its own class, and refuses the names every object inherits, which class-transformer skips unseen.
    for (const name of ['constructor', 'toString', '__proto__', 'valueOf']) {
      expect((await testApp.http().get(`/v1/accounts/${userId}/transactions?${name}=x`).expect(400)).body).toMatchObject({ errors: [{ field: name, rule: 'whitelistValidation' }] });
    }
    await testApp.http().get(`/v1/accounts/${userId}/holds?status=active`).expect(200);
    expect((await testApp.http().get(`/v1/accounts/${userId}/holds?status=active&unknown=1`).expect(400)).body).toMatchObject({ errors: [{ field: 'unknown', rule: 'whitelistValidation' }] });
    // Nor the names of the query class's own methods, which class-transformer skips unseen too: `?page=3` answered the first page.
    const auditor = `Bearer ${await testToken('auditor')}`;
    for (const route of [`/v1/accounts/${userId}/transactions?position=20`, `/v1/accounts/${userId}/holds?position=1`, `/v1/accounts/${userId}/lots?position=1`, `/v1/accounts/${userId}/payments?position=1`]) {
      expect((await testApp.http().get(route).expect(400)).body).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ field: 'position', rule: 'whitelistValidation' }] });
    }
    for (const [route, field] of [
      [`/v1/audit/accounts/${userId}/events?page=3`, 'page'],
      [`/v1/audit/accounts/${userId}/events?format=ndjson&page=2`, 'page'],
      [`/v1/audit/accounts/${userId}/balance?revision=0&asOf=2027-01-01T00:00:00Z`, 'asOf'],
    ]) {
      expect((await testApp.http().get(route ?? '').set('authorization', auditor).expect(400)).body).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ field, rule: 'whitelistValidation' }] });
    }
    await testApp.http().get(`/v1/audit/accounts/${userId}/events?limit=1`).set('authorization', auditor).expect(200);
  });
});
