import { randomUUID } from 'node:crypto';
import { ApiKeyRepository, CLI_CALLER, type ApiKeyRole, type ApiKeyScope } from '@app/auth';
import { SignJWT } from 'jose';
import { startTestApp, TEST_ADMIN_SUBJECT, TEST_JWT_SECRET, type TestApp } from './support/test-app.js';

/**
 * Credentials with limits: API keys with scopes and an expiry (managed over HTTP as by the CLI), and
 * JWTs with a maximum lifetime. Keys used to carry a role only, and a 100-year token was accepted.
 */
let testApp: TestApp;
let repository: ApiKeyRepository;

beforeAll(async () => {
  testApp = await startTestApp();
  repository = new ApiKeyRepository(testApp.database.pool);
});

afterAll(async () => {
  await testApp.close();
});

async function key(role: ApiKeyRole, scopes?: ApiKeyScope[], expiresAt?: Date): Promise<string> {
  return (await repository.create({ name: `key ${randomUUID()}`, role, scopes, expiresAt })).key;
}

async function count(sql: string, parameters: unknown[] = []): Promise<number> {
  return Number((await testApp.database.pool.query<{ n: string }>(sql, parameters)).rows[0]?.n);
}

describe('an API key with scopes', () => {
  it('may do what its scopes allow, and gets 403 naming the missing scope for the rest, writing nothing', async () => {
    const purchasesOnly = await key('service', ['purchases:write']);
    const userId = randomUUID();
    await testApp.anonymous().post(`/v1/accounts/${userId}/purchases`).set('x-api-key', purchasesOnly).send({ paymentId: randomUUID(), amount: 10 }).expect(201);
    const usage = await testApp.anonymous().post(`/v1/accounts/${userId}/usage`).set('x-api-key', purchasesOnly).set('idempotency-key', randomUUID()).send({ amount: 1 }).expect(403);
    expect(usage.body).toMatchObject({ code: 'FORBIDDEN', missingScope: 'usage:write' });
    expect(usage.body.detail).toContain('usage:write');
    const balance = await testApp.anonymous().get(`/v1/accounts/${userId}/balance`).set('x-api-key', purchasesOnly).expect(403);
    expect(balance.body).toMatchObject({ code: 'FORBIDDEN', missingScope: 'accounts:read' });
    expect(await count('SELECT count(*) AS n FROM events WHERE stream_id = $1', [`token-account-${userId}`])).toBe(1);
    expect(await count('SELECT count(*) AS n FROM idempotency_keys')).toBe(0);
  });

  it('is refused with 401 once expired or revoked', async () => {
    const expiring = await repository.create({ name: `expiring ${randomUUID()}`, role: 'service', expiresAt: new Date(Date.now() + 60_000) });
    const path = `/v1/accounts/${randomUUID()}/balance`;
    await testApp.anonymous().get(path).set('x-api-key', expiring.key).expect(200);
    await testApp.database.pool.query("UPDATE api_keys SET created_at = now() - interval '1 day', expires_at = now() - interval '1 second' WHERE id = $1", [expiring.record.id]);
    expect((await testApp.anonymous().get(path).set('x-api-key', expiring.key).expect(401)).body).toMatchObject({ code: 'UNAUTHENTICATED' });
    const revoked = await repository.create({ name: `revoked ${randomUUID()}`, role: 'service' });
    await repository.revoke(revoked.record.id, CLI_CALLER);
    await testApp.anonymous().get(path).set('x-api-key', revoked.key).expect(401);
  });
});

describe('/v1/admin/api-keys', () => {
  it('creates a key (shown once), lists it without a secret, and revokes it', async () => {
    const body = { name: 'billing', role: 'service', scopes: ['purchases:write', 'accounts:read'], expiresAt: '2099-01-01T00:00:00Z' };
    // Refused, not ignored: a stored response would keep the secret, and a retry would create a second key.
    expect((await testApp.http().post('/v1/admin/api-keys').set('idempotency-key', randomUUID()).send(body).expect(400)).body).toMatchObject({ code: 'IDEMPOTENCY_KEY_INVALID' });
    const created = await testApp.http().post('/v1/admin/api-keys').send(body).expect(201);
    expect(created.body).toMatchObject({ name: 'billing', role: 'service', scopes: ['purchases:write', 'accounts:read'], expiresAt: '2099-01-01T00:00:00.000Z', revokedAt: null, createdBy: `jwt:${TEST_ADMIN_SUBJECT}`, revokedBy: null });
    const secret = created.body.key as string;
    expect(secret).toMatch(/^tlk_/);
    expect(await count('SELECT count(*) AS n FROM idempotency_keys')).toBe(0);
    await testApp.anonymous().get(`/v1/accounts/${randomUUID()}/balance`).set('x-api-key', secret).expect(200);

    const listed = await testApp.http().get('/v1/admin/api-keys').expect(200);
    const entry = (listed.body.data as { id: string }[]).find((each) => each.id === created.body.id);
    expect(entry).toEqual({ ...created.body, key: undefined, lastUsedAt: expect.any(String) as unknown });
    expect(JSON.stringify(listed.body)).not.toContain(secret.slice(-43));

    const revoked = await testApp.http().delete(`/v1/admin/api-keys/${created.body.id as string}`).expect(200);
    expect(revoked.body).toMatchObject({ revokedAt: expect.any(String), revokedBy: `jwt:${TEST_ADMIN_SUBJECT}` });
    await testApp.anonymous().get(`/v1/accounts/${randomUUID()}/balance`).set('x-api-key', secret).expect(401);
    // Revoked again by another admin: the first revocation stays on record.
    const again = await (await testApp.as('admin')).delete(`/v1/admin/api-keys/${created.body.id as string}`).expect(200);
    expect(again.body).toMatchObject({ revokedAt: revoked.body.revokedAt, revokedBy: `jwt:${TEST_ADMIN_SUBJECT}` });
  });

  it.each([
    [{ name: 'x', role: 'auditor', scopes: ['usage:write'] }, 400, 'API_KEY_SCOPE_INVALID'],
    [{ name: 'x', role: 'service', scopes: ['everything'] }, 400, 'VALIDATION_FAILED'],
    [{ name: 'x', role: 'service', scopes: [] }, 400, 'VALIDATION_FAILED'],
    [{ name: 'x', role: 'user' }, 400, 'VALIDATION_FAILED'],
    [{ name: '', role: 'service' }, 400, 'VALIDATION_FAILED'],
    [{ name: 'x', role: 'service', expiresAt: '2001-01-01T00:00:00Z' }, 400, 'API_KEY_EXPIRY_INVALID'],
    [{ name: 'x', role: 'service', expiresAt: '2099-01-01T00:00:00' }, 400, 'VALIDATION_FAILED'],
    [{ name: 'x', role: 'service', expiresAt: 'tomorrow' }, 400, 'VALIDATION_FAILED'],
  ])('refuses %j with %i %s and creates nothing', async (body, status, code) => {
    const before = await count('SELECT count(*) AS n FROM api_keys');
    expect((await testApp.http().post('/v1/admin/api-keys').send(body).expect(status)).body).toMatchObject({ code });
    expect(await count('SELECT count(*) AS n FROM api_keys')).toBe(before);
  });

  it('counts a name in characters, an emoji as one, as the rule says: 100 accepted, 101 refused naming it, never a 500', async () => {
    const hundred = '\u{1F389}'.repeat(100);
    const created = await testApp.http().post('/v1/admin/api-keys').send({ name: hundred, role: 'service' }).expect(201);
    expect(created.body).toMatchObject({ name: hundred });
    await testApp.http().delete(`/v1/admin/api-keys/${created.body.id as string}`).expect(200);
    const refused = await testApp.http().post('/v1/admin/api-keys').send({ name: `${hundred}\u{1F389}`, role: 'service' }).expect(400);
    expect(refused.body).toMatchObject({ code: 'VALIDATION_FAILED', errors: [expect.objectContaining({ field: 'name' })] });
  });

  it('trims a name, and refuses a blank one (invisible characters alone too) or one with control characters, naming the rule', async () => {
    const created = await testApp.http().post('/v1/admin/api-keys').send({ name: '  trimmed-backend \n', role: 'service' }).expect(201);
    expect(created.body).toMatchObject({ name: 'trimmed-backend' });
    await testApp.http().delete(`/v1/admin/api-keys/${created.body.id as string}`).expect(200);
    for (const [name, rule] of [
      ['   ', 'minLength'],
      ['\u200b', 'minLength'],
      [' \u3164\u200b ', 'minLength'],
      ['billing\nbackend', 'matches'],
      ['billing\tbackend', 'matches'],
      ['billing\u0085backend', 'matches'],
    ] as const) {
      const refused = await testApp.http().post('/v1/admin/api-keys').send({ name, role: 'service' }).expect(400);
      expect(refused.body.errors).toEqual([expect.objectContaining({ field: 'name', rule })]);
    }
  });

  it('answers 404 for an unknown id and 400 for a malformed one', async () => {
    expect((await testApp.http().delete(`/v1/admin/api-keys/${'f'.repeat(24)}`).expect(404)).body).toMatchObject({ code: 'API_KEY_NOT_FOUND' });
    expect((await testApp.http().delete('/v1/admin/api-keys/not-an-id').expect(400)).body).toMatchObject({ code: 'VALIDATION_FAILED' });
  });

  it('is for admins, and a key that manages keys can only hand on scopes it holds', async () => {
    await (await testApp.as('service')).get('/v1/admin/api-keys').expect(403);
    const manager = await key('admin', ['api-keys:manage', 'usage:write']);
    const escalation = await testApp.anonymous().post('/v1/admin/api-keys').set('x-api-key', manager).send({ name: `admin ${randomUUID()}`, role: 'admin' }).expect(403);
    expect(escalation.body.missingScopes).toEqual(expect.arrayContaining(['audit:read', 'adjustments:write']));
    const made = await testApp.anonymous().post('/v1/admin/api-keys').set('x-api-key', manager).send({ name: `usage ${randomUUID()}`, role: 'service', scopes: ['usage:write'] }).expect(201);
    // Created by that key, on record: after a leak, the keys it made are found by createdBy.
    expect(made.body.createdBy).toBe(`api_key:${manager.slice(4, 28)}`);
  });

  it('revoked by a key that manages keys only when that key holds every scope of it: a narrow key cannot take down a wider one (and then its name)', async () => {
    const manager = await key('admin', ['api-keys:manage', 'usage:write']);
    const wider = await repository.create({ name: `billing ${randomUUID()}`, role: 'service' });
    const narrow = await repository.create({ name: `usage ${randomUUID()}`, role: 'service', scopes: ['usage:write'] });
    const refused = await testApp.anonymous().delete(`/v1/admin/api-keys/${wider.record.id}`).set('x-api-key', manager).expect(403);
    expect(refused.body).toMatchObject({ code: 'FORBIDDEN', missingScopes: expect.arrayContaining(['accounts:read', 'purchases:write']) });
    expect(refused.body.missingScopes).not.toContain('usage:write');
    // Still the wider key's: it works, and its name is still taken.
    expect((await repository.find(wider.record.id))?.revokedAt).toBeNull();
    await testApp.anonymous().get(`/v1/accounts/${randomUUID()}/balance`).set('x-api-key', wider.key).expect(200);
    const revoked = await testApp.anonymous().delete(`/v1/admin/api-keys/${narrow.record.id}`).set('x-api-key', manager).expect(200);
    expect(revoked.body).toMatchObject({ id: narrow.record.id, revokedBy: `api_key:${manager.slice(4, 28)}` });
    // An unknown id is 404 to it too; an admin's JWT revokes any key.
    await testApp.anonymous().delete(`/v1/admin/api-keys/${'f'.repeat(24)}`).set('x-api-key', manager).expect(404);
    await testApp.http().delete(`/v1/admin/api-keys/${wider.record.id}`).expect(200);
  });

  it("made to replace another (a rotation), answers a retry the old key first sent with that request's answer: debited once; an unrelated key's is its own request", async () => {
    const userId = randomUUID();
    await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 100 }).expect(201);
    const created = async (body: Record<string, unknown>) => (await testApp.http().post('/v1/admin/api-keys').send({ name: `backend ${randomUUID()}`, role: 'service', scopes: ['usage:write'], ...body }).expect(201)).body as { key: string; id: string; idempotencyScope: string };
    const old = await created({});
    const rotated = await created({ replaces: old.id });
    expect(rotated.idempotencyScope).toBe(old.id);
    const unrelated = await created({});
    const spend = (apiKey: string) => testApp.anonymous().post(`/v1/accounts/${userId}/usage`).set('x-api-key', apiKey).set('idempotency-key', 'order-7-usage').send({ amount: 30 });
    const first = (await spend(old.key).expect(201)).body as { transaction: { id: string } };
    // The old key revoked before the backend's queued retry went out with the new one.
    await testApp.http().delete(`/v1/admin/api-keys/${old.id}`).expect(200);
    expect(((await spend(rotated.key).expect(201)).body as { transaction: { id: string } }).transaction.id).toBe(first.transaction.id);
    expect((await testApp.http().get(`/v1/accounts/${userId}/balance`).expect(200)).body).toMatchObject({ balance: 70 });
    // The same Idempotency-Key from a key that replaces none is another caller's request.
    expect(((await spend(unrelated.key).expect(201)).body as { transaction: { id: string } }).transaction.id).not.toBe(first.transaction.id);
    expect((await testApp.http().get(`/v1/accounts/${userId}/balance`).expect(200)).body).toMatchObject({ balance: 40 });
    const refused = await testApp.http().post('/v1/admin/api-keys').send({ name: `admin ${randomUUID()}`, role: 'admin', replaces: old.id }).expect(400);
    expect(refused.body).toMatchObject({ code: 'API_KEY_REPLACES_INVALID', field: 'replaces' });
    expect((await testApp.http().post('/v1/admin/api-keys').send({ name: 'x', role: 'service', replaces: 'not-an-id' }).expect(400)).body).toMatchObject({ code: 'VALIDATION_FAILED', errors: [expect.objectContaining({ field: 'replaces' })] });
  });

  it('created by a key that expires, expires by then too: 400 naming expiresAt and the latest allowed', async () => {
    const expiresAt = new Date(Date.now() + 3_600_000);
    const manager = await key('admin', ['api-keys:manage', 'usage:write'], expiresAt);
    const create = (body: Record<string, unknown>) => testApp.anonymous().post('/v1/admin/api-keys').set('x-api-key', manager).send({ name: `usage ${randomUUID()}`, role: 'service', scopes: ['usage:write'], ...body });
    expect((await create({}).expect(400)).body).toMatchObject({ code: 'API_KEY_EXPIRY_INVALID', field: 'expiresAt', latest: expiresAt.toISOString() });
    await create({ expiresAt: new Date(expiresAt.getTime() + 1_000).toISOString() }).expect(400);
    expect((await create({ expiresAt: expiresAt.toISOString() }).expect(201)).body).toMatchObject({ expiresAt: expiresAt.toISOString() });
  });
});

describe('a JWT', () => {
  async function token(lifetimeSeconds: number): Promise<string> {
    const now = Math.floor(Date.now() / 1_000);
    return new SignJWT({ sub: randomUUID(), app_metadata: { roles: ['admin'] } })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuedAt(now)
      .setExpirationTime(now + lifetimeSeconds)
      .sign(new TextEncoder().encode(TEST_JWT_SECRET));
  }

  it('living 100 years is refused with 401 saying why; one of 24 hours is accepted', async () => {
    const century = await testApp.anonymous().get(`/v1/accounts/${randomUUID()}/balance`).set('authorization', `Bearer ${await token(100 * 365 * 86_400)}`).expect(401);
    expect(century.body).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(century.body.detail).toMatch(/lifetime .* at most 86400/);
    await testApp.anonymous().get(`/v1/accounts/${randomUUID()}/balance`).set('authorization', `Bearer ${await token(86_400)}`).expect(200);
  });

  it('follows AUTH_JWT_MAX_LIFETIME_SECONDS', async () => {
    const strict = await startTestApp({ AUTH_JWT_MAX_LIFETIME_SECONDS: '600' });
    try {
      await strict.anonymous().get(`/v1/accounts/${randomUUID()}/balance`).set('authorization', `Bearer ${await token(601)}`).expect(401);
      await strict.anonymous().get(`/v1/accounts/${randomUUID()}/balance`).set('authorization', `Bearer ${await token(600)}`).expect(200);
    } finally {
      await strict.close();
    }
  });
});
