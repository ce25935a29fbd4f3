import { createHmac, generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { API_KEY_ROLES, ApiKeyRepository, CLI_CALLER, authorize, ENDPOINT_ACTIONS, ROLES, scopesOfRole, type Actor, type ApiKeyRole, type Endpoint, type Role } from '@app/auth';
import { exportJWK, SignJWT } from 'jose';
import { toFastifyPath } from '../apps/api/src/auth/access-control.js';
import { roleTableMarkdown } from './support/role-table.js';
import { startTestApp, TEST_JWT_SECRET, testToken, type TestApp } from './support/test-app.js';

/**
 * Access control through the real application: the whole role table (every endpoint of
 * ENDPOINT_ACTIONS, which the README shows, for every role, with JWTs and with API keys), bad
 * credentials, and what a refused request leaves behind (nothing).
 */
let testApp: TestApp;
let apiKeys: Record<ApiKeyRole, string>;

beforeAll(async () => {
  testApp = await startTestApp();
  const repository = new ApiKeyRepository(testApp.database.pool);
  apiKeys = Object.fromEntries(await Promise.all(API_KEY_ROLES.map(async (role) => [role, (await repository.create({ name: `${role} key`, role })).key]))) as Record<ApiKeyRole, string>;
});

afterAll(async () => {
  await testApp.close();
});

type Credential = { readonly header: 'authorization' | 'x-api-key'; readonly value: string; readonly actor: Actor };

async function jwtCredential(role: Role, subject: string): Promise<Credential> {
  return { header: 'authorization', value: `Bearer ${await testToken(role, subject)}`, actor: { subject, role, kind: 'jwt' } };
}

/** A user with 1,000 tokens and a PENDING payment, set up by the admin. */
async function userWithPayment(): Promise<{ userId: string; paymentId: string }> {
  const userId = randomUUID();
  await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 1_000 }).expect(201);
  const payment = await testApp.http().post('/v1/payments').send({ userId, packageId: 'starter' }).expect(201);
  return { userId, paymentId: payment.body.paymentId as string };
}

/** A request to `endpoint` on resources owned by `owner` (its user id and payment), with a valid body. */
function send(endpoint: Endpoint, owner: { userId: string; paymentId: string }, credential: Credential) {
  const path = endpoint.path
    .replace('{userId}', owner.userId)
    .replace('{paymentId}', owner.paymentId)
    .replace('{name}', 'no_such_projection')
    .replace('{id}', randomUUID())
    .replace('{holdId}', randomUUID())
    .replace('{lotId}', randomUUID());
  const agent = testApp.anonymous();
  const request = endpoint.method === 'GET' ? agent.get(path) : endpoint.method === 'DELETE' ? agent.delete(path) : agent.post(path).send(bodyFor(endpoint, owner));
  return request.set(credential.header, credential.value);
}

function bodyFor(endpoint: Endpoint, owner: { userId: string }): object {
  if (endpoint.path === '/v1/payments') return { userId: owner.userId, packageId: 'starter' };
  if (endpoint.path.endsWith('/usage')) return { amount: 1, description: 'role table' };
  if (endpoint.path.endsWith('/purchases')) return { paymentId: randomUUID(), amount: 1 };
  if (endpoint.path.endsWith('/adjustments')) return { amount: 1, reason: 'role table' };
  if (endpoint.path.endsWith('/holds') || endpoint.path.endsWith('/settle')) return { amount: 1 };
  if (endpoint.path.endsWith('/grants')) return { amount: 1, reason: 'role table' };
  if (endpoint.path.endsWith('/void')) return { reason: 'role table' };
  if (endpoint.path.endsWith('/api-keys')) return { name: `role table ${randomUUID()}`, role: 'service' };
  return {};
}

/**
 * Every endpoint, for the credential, on another user's resources, and for a user also on its own
 * (a token minted for the owner). Allowed means anything but 401/403 (a 404 for an unknown
 * projection or rebuild still proves the caller got past access control); refused means 403 FORBIDDEN.
 */
async function walkTable(credential: Credential): Promise<string[]> {
  const mismatches: string[] = [];
  for (const endpoint of ENDPOINT_ACTIONS) {
    const cases = [{ label: "another user's", owner: await userWithPayment(), credential }];
    if (credential.actor.role === 'user') {
      const mine = await userWithPayment();
      cases.push({ label: 'own', owner: mine, credential: await jwtCredential('user', mine.userId) });
    }
    for (const each of cases) {
      const response = await send(endpoint, each.owner, each.credential);
      const expected = authorize(each.credential.actor, endpoint.action, endpoint.owner === 'none' ? undefined : each.owner.userId).allowed;
      const ok = expected ? response.status !== 401 && response.status !== 403 : response.status === 403 && response.body.code === 'FORBIDDEN';
      if (!ok) mismatches.push(`${each.credential.actor.kind} ${each.credential.actor.role} ${endpoint.method} ${endpoint.path} (${each.label}): expected ${expected ? 'served' : '403'}, got ${response.status} ${JSON.stringify(response.body).slice(0, 200)}`);
    }
  }
  return mismatches;
}

describe('the role table', () => {
  it.each(ROLES)('is enforced for every endpoint for a %s JWT, on its own resources and on others', async (role) => {
    expect(await walkTable(await jwtCredential(role, randomUUID()))).toEqual([]);
  }, 60_000);

  it.each(API_KEY_ROLES)('is enforced for every endpoint for a %s API key', async (role) => {
    const id = /^tlk_([0-9a-f]{24})_/.exec(apiKeys[role])?.[1] ?? '';
    expect(await walkTable({ header: 'x-api-key', value: apiKeys[role], actor: { subject: id, role, kind: 'api_key', scopes: scopesOfRole(role) } })).toEqual([]);
  }, 60_000);

  it('names only routes the application serves (and an unlisted route stops the app at start)', () => {
    const fastify = testApp.app.getHttpAdapter().getInstance();
    const missing = ENDPOINT_ACTIONS.filter((endpoint) => !fastify.hasRoute({ method: endpoint.method, url: toFastifyPath(endpoint.path) }));
    expect(missing).toEqual([]);
  });
});

describe('a refused request', () => {
  it("tells a user nothing about another user's account: the same 403 whether it exists or not", async () => {
    const { userId } = await userWithPayment();
    const stranger = await testApp.as('user');
    const existing = await stranger.get(`/v1/accounts/${userId}/balance`).expect(403);
    const absent = await stranger.get(`/v1/accounts/${randomUUID()}/balance`).expect(403);
    expect({ ...existing.body, instance: undefined }).toEqual({ ...absent.body, instance: undefined });
    expect(JSON.stringify(existing.body)).not.toContain('1000');
  });

  it('answers 403 for a payment of another user exactly as for a payment that does not exist', async () => {
    const { paymentId } = await userWithPayment();
    const stranger = await testApp.as('user');
    const other = await stranger.get(`/v1/payments/${paymentId}`).expect(403);
    const none = await stranger.get(`/v1/payments/${randomUUID()}`).expect(403);
    expect({ ...other.body, instance: undefined }).toEqual({ ...none.body, instance: undefined });
  });

  it('serves a user whose id is UUID-shaped hex of no UUID version or variant, as its token was accepted for (an MD5 name, SQL Server sequential ids)', async () => {
    for (const sub of ['12345678-1234-1234-1234-123456789abc', '00000000-0000-0000-0000-000000000001', 'C5A2B1E0-0F3B-E111-B5C4-00155D0A1234']) {
      const own = sub.toLowerCase();
      const user = await testApp.as('user', sub);
      await user.get(`/v1/accounts/${sub}/balance`).expect(200, { userId: own, balance: 0, held: 0, available: 0, nextExpiry: null });
      const credited = await testApp.http().post(`/v1/accounts/${sub}/purchases`).send({ paymentId: randomUUID(), amount: 5 }).expect(201);
      expect(credited.body).toMatchObject({ userId: own, balance: 5 });
      await testApp.http().post(`/v1/accounts/${own}/usage`).send({ amount: 2 }).expect(201);
      expect((await user.get(`/v1/accounts/${sub}/balance`).expect(200)).body).toMatchObject({ balance: 3 });
      // Another user's account stays another's, in either case.
      await (await testApp.as('user')).get(`/v1/accounts/${sub}/balance`).expect(403);
    }
  });

  it('answers a user 400 naming a malformed id, as any role, not 403: no account or payment has it', async () => {
    const user = await testApp.as('user');
    const balance = await user.get('/v1/accounts/not-a-uuid/balance').expect(400);
    expect(balance.body).toMatchObject({ code: 'VALIDATION_FAILED', errors: [expect.objectContaining({ field: 'userId', rule: 'isUuid' })] });
    const payment = await user.get('/v1/payments/12345').expect(400);
    expect(payment.body.errors).toEqual([expect.objectContaining({ field: 'paymentId', rule: 'isUuid' })]);
    const opened = await user.post('/v1/payments').send({ userId: 'someone', packageId: 'starter' }).expect(400);
    expect(opened.body.errors).toEqual([expect.objectContaining({ field: 'userId', rule: 'isUuid' })]);
    const missing = await user.post('/v1/payments').send({ packageId: 'starter' }).expect(400);
    expect(missing.body.errors).toEqual([expect.objectContaining({ field: 'userId', rule: 'isDefined' })]);
    // Hex of the wrong length, or a non-hex digit: refused alike for an admin.
    for (const malformed of ['00000000-0000-0000-0000-00000000001', '0000000g-0000-0000-0000-000000000001']) {
      expect((await user.get(`/v1/accounts/${malformed}/balance`).expect(400)).body.errors).toEqual([expect.objectContaining({ field: 'userId', rule: 'isUuid' })]);
      expect((await (await testApp.as('admin')).get(`/v1/accounts/${malformed}/balance`).expect(400)).body.errors).toEqual([expect.objectContaining({ field: 'userId', rule: 'isUuid' })]);
    }
    // Refused before the Idempotency-Key is looked at: no key row.
    const keys = async () => Number((await testApp.database.pool.query<{ n: string }>('SELECT count(*) AS n FROM idempotency_keys')).rows[0]?.n);
    const keysBefore = await keys();
    await user.post('/v1/payments/not-a-uuid/capture').set('idempotency-key', `k-${randomUUID()}`).send({}).expect(400);
    expect(await keys()).toBe(keysBefore);
    // Well formed but another's: still the 403 that says nothing about it; and a role the action is
    // not open to is refused whatever the id.
    await user.get(`/v1/accounts/${randomUUID()}/balance`).expect(403);
    await (await testApp.as('auditor')).post('/v1/accounts/not-a-uuid/usage').send({ amount: 1 }).expect(403);
  });

  it('writes nothing: no event, no Idempotency-Key row, whether unauthenticated or forbidden', async () => {
    const userId = randomUUID();
    const events = async () => Number((await testApp.database.pool.query<{ n: string }>('SELECT count(*) AS n FROM events')).rows[0]?.n);
    const keys = async () => Number((await testApp.database.pool.query<{ n: string }>('SELECT count(*) AS n FROM idempotency_keys')).rows[0]?.n);
    const [eventsBefore, keysBefore] = [await events(), await keys()];
    await testApp.anonymous().post(`/v1/accounts/${userId}/purchases`).set('idempotency-key', 'k-anonymous').send({ paymentId: randomUUID(), amount: 5 }).expect(401);
    await (await testApp.as('user', userId)).post(`/v1/accounts/${userId}/purchases`).set('idempotency-key', 'k-user').send({ paymentId: randomUUID(), amount: 5 }).expect(403);
    await (await testApp.as('auditor')).post(`/v1/accounts/${userId}/usage`).send({ amount: 1 }).expect(403);
    expect([await events(), await keys()]).toEqual([eventsBefore, keysBefore]);
  });

  it('names the role with its article in the detail', async () => {
    const userId = randomUUID();
    const detail = async (role: 'user' | 'service' | 'auditor', path: string) => (await (await testApp.as(role, userId)).post(path).send({}).expect(403)).body.detail as string;
    expect(await detail('auditor', `/v1/accounts/${userId}/usage`)).toBe('an auditor may not perform account.usage.record here');
    expect(await detail('user', `/v1/accounts/${userId}/usage`)).toBe('a user may not perform account.usage.record here');
    expect(await detail('service', `/v1/admin/accounts/${userId}/rebuild`)).toBe('a service may not perform projections.rebuild here');
  });

  it('is refused before validation: a forbidden caller learns nothing about the body rules', async () => {
    const response = await (await testApp.as('auditor')).post(`/v1/accounts/${randomUUID()}/usage`).send({ amount: 'lots' }).expect(403);
    expect(response.body.code).toBe('FORBIDDEN');
  });

  it('is refused before the body is read: not JSON, another media type or a property named twice is 403 to a forbidden caller, 400 or 415 to an allowed one', async () => {
    const userId = randomUUID();
    const bodies: readonly (readonly [string, string, number])[] = [
      ['application/json', '{bad', 400],
      ['text/plain', 'amount=1', 415],
      ['application/json', '{"amount": 1, "amount": 2}', 400],
    ];
    for (const [type, body, allowed] of bodies) {
      for (const [role, owner] of [['user', randomUUID()], ['auditor', userId]] as const) {
        const refused = await (await testApp.as(role, owner)).post(`/v1/accounts/${userId}/usage`).set('content-type', type).send(body);
        expect([role, type, body, refused.status, refused.body.code]).toEqual([role, type, body, 403, 'FORBIDDEN']);
      }
      const service = await (await testApp.as('service')).post(`/v1/accounts/${userId}/usage`).set('content-type', type).send(body);
      expect([type, body, service.status]).toEqual([type, body, allowed]);
    }
  });

  it('keeps Idempotency-Keys per caller: the same key from two services does two things, and neither sees the other\'s response', async () => {
    const userId = randomUUID();
    const repository = new ApiKeyRepository(testApp.database.pool);
    const [first, second] = await Promise.all([repository.create({ name: `a ${randomUUID()}`, role: 'service' }), repository.create({ name: `b ${randomUUID()}`, role: 'service' })]);
    const purchase = (key: string, amount: number) =>
      testApp.anonymous().post(`/v1/accounts/${userId}/purchases`).set('x-api-key', key).set('idempotency-key', 'shared-key').send({ paymentId: randomUUID(), amount });
    expect((await purchase(first.key, 5)).status).toBe(201);
    const other = await purchase(second.key, 7);
    expect(other.status).toBe(201);
    expect(other.headers['idempotent-replayed']).toBeUndefined();
    expect((await testApp.http().get(`/v1/accounts/${userId}/balance`)).body.balance).toBe(12);
  });
});

describe('bad credentials', () => {
  const userId = randomUUID();
  const path = `/v1/accounts/${userId}/balance`;
  const bearer = (token: string) => testApp.anonymous().get(path).set('authorization', `Bearer ${token}`);
  const key = new TextEncoder().encode(TEST_JWT_SECRET);
  const claims = { app_metadata: { roles: ['admin'] } };

  const SIGNED_WITH_ANOTHER_KEY = "the token's signature does not verify with this server's key: it was signed with another secret or key (for a development token: minted with another DATA_DIR)";

  function expectRefused(response: { status: number; body: Record<string, unknown>; headers: Record<string, string> }, detail = 'missing or invalid credentials: send Authorization: Bearer <JWT> or X-API-Key'): void {
    expect(response.status).toBe(401);
    expect(response.body).toMatchObject({ status: 401, code: 'UNAUTHENTICATED', detail });
    expect(response.headers['www-authenticate']).toMatch(/^Bearer realm="token-ledger"/);
  }

  it('refuses a request without credentials, with WWW-Authenticate', async () => {
    expectRefused(await testApp.anonymous().get(path));
  });

  it('refuses an expired token', async () => {
    const now = Math.floor(Date.now() / 1000);
    expectRefused(await bearer(await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject(userId).setIssuedAt(now - 7200).setExpirationTime(now - 3600).sign(key)));
  });

  it("refuses a token signed with another secret, saying the signature does not verify with this server's key", async () => {
    const other = new TextEncoder().encode('another-secret-another-secret-another-secret');
    const response = await bearer(await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject(userId).setExpirationTime('1h').sign(other));
    expectRefused(response, SIGNED_WITH_ANOTHER_KEY);
    expect(JSON.stringify(response.body)).not.toContain(TEST_JWT_SECRET);
  });

  it('refuses an unsigned token (alg: none)', async () => {
    const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const unsigned = `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ ...claims, sub: userId, exp: Math.floor(Date.now() / 1000) + 3600 })}.`;
    expectRefused(await bearer(unsigned));
  });

  it('refuses a token whose signature was made for other claims (role raised after signing)', async () => {
    const token = await testToken('user', userId);
    const [header, , signature] = token.split('.');
    const raised = Buffer.from(JSON.stringify({ sub: userId, app_metadata: { roles: ['admin'] }, exp: Math.floor(Date.now() / 1000) + 3600 })).toString('base64url');
    expectRefused(await bearer(`${header}.${raised}.${signature}`), SIGNED_WITH_ANOTHER_KEY);
  });

  it('refuses a token signed with an RSA key the service does not trust', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    expectRefused(await bearer(await new SignJWT(claims).setProtectedHeader({ alg: 'RS256' }).setSubject(userId).setExpirationTime('1h').sign(privateKey)));
  });

  it.each([
    ['not a JWT', 'Bearer not-a-token'],
    ['two segments', 'Bearer abc.def'],
    ['garbage segments', 'Bearer a.b.c'],
    ['another scheme', `Basic ${Buffer.from('admin:admin').toString('base64')}`],
    ['an empty bearer', 'Bearer '],
  ])('refuses a malformed Authorization header: %s', async (_name, header) => {
    expectRefused(await testApp.anonymous().get(path).set('authorization', header));
  });

  it('refuses a token whose subject is not a UUID', async () => {
    expectRefused(await bearer(await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject('admin').setExpirationTime('1h').sign(key)));
  });

  it('refuses unknown, malformed and revoked API keys, and both credentials at once', async () => {
    const repository = new ApiKeyRepository(testApp.database.pool);
    const created = await repository.create({ name: `revoked ${randomUUID()}`, role: 'admin' });
    await testApp.anonymous().get(path).set('x-api-key', created.key).expect(200);
    await repository.revoke(created.record.id, CLI_CALLER);
    expectRefused(await testApp.anonymous().get(path).set('x-api-key', created.key));
    expectRefused(await testApp.anonymous().get(path).set('x-api-key', `tlk_${'0'.repeat(24)}_${'A'.repeat(43)}`));
    expectRefused(await testApp.anonymous().get(path).set('x-api-key', 'letmein'));
    const secret = created.key.split('_')[2] ?? '';
    const other = await repository.create({ name: `live ${randomUUID()}`, role: 'admin' });
    // A live key's id with another key's secret.
    expectRefused(await testApp.anonymous().get(path).set('x-api-key', `tlk_${other.record.id}_${secret}`));
    expectRefused(await testApp.anonymous().get(path).set('x-api-key', other.key).set('authorization', `Bearer ${await testToken('admin')}`));
  });

  it('leaves the public routes open: health, the OpenAPI document, the signed webhook', async () => {
    await testApp.anonymous().get('/health').expect(200);
    const document = await testApp.anonymous().get('/docs-json').expect(200);
    expect(document.body.components.securitySchemes).toMatchObject({ bearer: { scheme: 'bearer' }, apiKey: { in: 'header', name: 'X-API-Key' } });
    const body = JSON.stringify({ paymentId: randomUUID() });
    const signature = `sha256=${createHmac('sha256', 'development-only-mock-webhook-secret').update(body).digest('hex')}`;
    const webhook = await testApp.anonymous().post('/v1/payments/webhooks/mock').set('content-type', 'application/json').set('x-mock-signature', signature).send(body);
    // Past access control (no UNAUTHENTICATED): the webhook's own signature check and validation answer.
    expect(webhook.body.code).not.toBe('UNAUTHENTICATED');
    expect(webhook.status).not.toBe(403);
  });
});

describe('the audit trail of a request', () => {
  it('records the actor, request, correlation and causation ids and the Idempotency-Key in every event it appends', async () => {
    const userId = randomUUID();
    const repository = new ApiKeyRepository(testApp.database.pool);
    const { key, record } = await repository.create({ name: `billing ${randomUUID()}`, role: 'service' });
    await testApp
      .anonymous()
      .post(`/v1/accounts/${userId}/purchases`)
      .set('x-api-key', key)
      .set('x-request-id', 'req-audit-1')
      .set('x-correlation-id', 'checkout-42')
      .set('idempotency-key', 'purchase-audit-1')
      .send({ paymentId: randomUUID(), amount: 9 })
      .expect(201);
    const adminSubject = randomUUID();
    await (await testApp.as('admin', adminSubject)).post(`/v1/accounts/${userId}/usage`).set('x-request-id', 'req-audit-2').send({ amount: 2 }).expect(201);
    const rows = await testApp.database.pool.query<{ metadata: Record<string, unknown> }>('SELECT metadata FROM events WHERE stream_id = $1 ORDER BY stream_revision', [`token-account-${userId}`]);
    expect(rows.rows.map((row) => row.metadata)).toEqual([
      expect.objectContaining({
        actor: { subject: record.id, role: 'service', kind: 'api_key' },
        requestId: 'req-audit-1',
        causationId: 'req-audit-1',
        correlationId: 'checkout-42',
        idempotencyKey: 'purchase-audit-1',
      }),
      expect.objectContaining({ actor: { subject: adminSubject, role: 'admin', kind: 'jwt' }, requestId: 'req-audit-2', causationId: 'req-audit-2', correlationId: 'req-audit-2' }),
    ]);
    expect(rows.rows[1]?.metadata).not.toHaveProperty('idempotencyKey');
  });
});

describe('the README', () => {
  it('shows the role table the service enforces', async () => {
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
    const table = /<!-- role-table:start -->\n([\s\S]*?)\n<!-- role-table:end -->/.exec(readme)?.[1];
    expect(table).toBe(roleTableMarkdown());
  });
});

describe('an identity provider with a key set (RS256 from a JWKS, Supabase-style role claim)', () => {
  it('accepts its tokens, reads the role from the configured claim, and refuses HS256 tokens', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const directory = await mkdtemp(path.join(tmpdir(), 'token-ledger-jwks-'));
    const file = path.join(directory, 'jwks.json');
    await writeFile(file, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'idp-1', alg: 'RS256', use: 'sig' }] }));
    const idp = await startTestApp({ AUTH_JWT_SECRET: undefined, AUTH_JWKS_FILE: file, AUTH_ROLES_CLAIM: 'role' });
    try {
      const userId = randomUUID();
      const sign = (role: string) => new SignJWT({ role }).setProtectedHeader({ alg: 'RS256', kid: 'idp-1' }).setSubject(userId).setExpirationTime('5m').sign(privateKey);
      // Supabase signs ordinary users with role "authenticated": not one of ours, so a user.
      await idp.anonymous().get(`/v1/accounts/${userId}/balance`).set('authorization', `Bearer ${await sign('authenticated')}`).expect(200);
      await idp.anonymous().get(`/v1/accounts/${randomUUID()}/balance`).set('authorization', `Bearer ${await sign('authenticated')}`).expect(403);
      await idp.anonymous().get('/v1/admin/projections').set('authorization', `Bearer ${await sign('auditor')}`).expect(200);
      await idp.anonymous().get(`/v1/accounts/${userId}/balance`).set('authorization', `Bearer ${await testToken('admin')}`).expect(401);
    } finally {
      await idp.close();
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('answers 503, not 401, while the key set cannot be fetched', async () => {
    const unreachable = await startTestApp({ AUTH_JWT_SECRET: undefined, AUTH_JWKS_URL: 'http://127.0.0.1:9/jwks.json' });
    try {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const token = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k' }).setSubject(randomUUID()).setExpirationTime('5m').sign(privateKey);
      const response = await unreachable.anonymous().get(`/v1/accounts/${randomUUID()}/balance`).set('authorization', `Bearer ${token}`);
      expect(response.status).toBe(503);
      expect(response.body.code).toBe('AUTHENTICATION_UNAVAILABLE');
    } finally {
      await unreachable.close();
    }
  });
});
