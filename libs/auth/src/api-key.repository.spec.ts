import { createTestDatabase, type TestDatabase } from '../../../test/support/test-database.js';
import { ApiKeyNameTakenError, ApiKeyRepository, CLI_CALLER } from './api-key.repository.js';
import { API_KEY_PATTERN, hashApiKeySecret, parseApiKey } from './api-keys.js';
import { AuthenticationError } from './authentication.errors.js';

let database: TestDatabase;
let keys: ApiKeyRepository;

beforeAll(async () => {
  database = await createTestDatabase();
  keys = new ApiKeyRepository(database.pool, { lastUsedResolutionSeconds: 60 });
});

afterAll(async () => {
  await database.drop();
});

async function refusal(presented: string): Promise<string> {
  try {
    await keys.authenticate(presented);
  } catch (error) {
    if (error instanceof AuthenticationError) return error.code;
    throw error;
  }
  throw new Error('the key was accepted');
}

describe('ApiKeyRepository', () => {
  it('keeps the scopes asked for, and gives a key made before scopes (NULL) the scopes of its role', async () => {
    const { key, record } = await keys.create({ name: 'purchases-only', role: 'service', scopes: ['purchases:write'] });
    expect(record.scopes).toEqual(['purchases:write']);
    await expect(keys.authenticate(key)).resolves.toMatchObject({ scopes: ['purchases:write'] });
    const legacy = await keys.create({ name: 'legacy', role: 'service' });
    await database.pool.query('UPDATE api_keys SET scopes = NULL WHERE id = $1', [legacy.record.id]);
    await expect(keys.authenticate(legacy.key)).resolves.toMatchObject({ role: 'service', scopes: ['accounts:read', 'usage:write', 'purchases:write', 'payments:write', 'holds:write'] });
  });

  it('refuses scopes the role cannot use, and scopes a creating key does not hold', async () => {
    await expect(keys.create({ name: 'auditor-writes', role: 'auditor', scopes: ['usage:write'] })).rejects.toMatchObject({ code: 'API_KEY_SCOPE_INVALID', details: { field: 'scopes', invalid: ['usage:write'] } });
    await expect(keys.create({ name: 'none', role: 'service', scopes: [] })).rejects.toMatchObject({ code: 'API_KEY_SCOPE_INVALID' });
    const grantor = { subject: 'a'.repeat(24), role: 'admin', kind: 'api_key', scopes: ['api-keys:manage', 'usage:write'] } as const;
    await expect(keys.create({ name: 'escalation', role: 'admin', grantor })).rejects.toMatchObject({ code: 'FORBIDDEN', details: { missingScopes: expect.arrayContaining(['audit:read']) as unknown } });
    await expect(keys.create({ name: 'narrower', role: 'service', scopes: ['usage:write'], grantor })).resolves.toMatchObject({ record: { scopes: ['usage:write'] } });
  });

  it('bounds the expiry of a key an API key creates by its creator\'s: none or a later one is refused naming the latest allowed', async () => {
    const creator = await keys.create({ name: 'week-long-admin', role: 'admin', expiresAt: new Date(Date.now() + 7 * 86_400_000) });
    const latest = creator.record.expiresAt ?? new Date(Number.NaN);
    const grantor = await keys.authenticate(creator.key);
    for (const expiresAt of [null, new Date(latest.getTime() + 1)]) {
      await expect(keys.create({ name: 'lasting', role: 'service', scopes: ['usage:write'], expiresAt, grantor })).rejects.toMatchObject({ code: 'API_KEY_EXPIRY_INVALID', details: { field: 'expiresAt', latest: latest.toISOString() } });
    }
    await expect(keys.create({ name: 'bounded', role: 'service', scopes: ['usage:write'], expiresAt: latest, grantor })).resolves.toMatchObject({ record: { expiresAt: latest } });
    // A key that never expires, and a JWT, may create one that never expires.
    const lasting = await keys.create({ name: 'lasting-admin', role: 'admin' });
    await expect(keys.create({ name: 'lasting-child', role: 'service', scopes: ['usage:write'], grantor: await keys.authenticate(lasting.key) })).resolves.toMatchObject({ record: { expiresAt: null } });
    await expect(keys.create({ name: 'from-a-jwt', role: 'service', grantor: { subject: '11111111-1111-4111-8111-111111111111', role: 'admin', kind: 'jwt' } })).resolves.toMatchObject({ record: { expiresAt: null } });
  });

  it('records who created and who revoked each key: after a leak, the keys the leaked one created can be found', async () => {
    const leaked = await keys.create({ name: 'leaked-admin', role: 'admin', createdBy: CLI_CALLER });
    const grantor = await keys.authenticate(leaked.key);
    const child = await keys.create({ name: 'made-by-leaked', role: 'service', scopes: ['usage:write'], grantor });
    const fromJwt = await keys.create({ name: 'made-by-operator', role: 'service', grantor: { subject: '22222222-2222-4222-8222-222222222222', role: 'admin', kind: 'jwt' } });
    expect([leaked.record.createdBy, child.record.createdBy, fromJwt.record.createdBy]).toEqual(['cli', `api_key:${leaked.record.id}`, 'jwt:22222222-2222-4222-8222-222222222222']);
    expect((await keys.list()).filter((record) => record.createdBy === `api_key:${leaked.record.id}`).map((record) => record.id)).toEqual([child.record.id]);
    await keys.revoke(leaked.record.id, 'jwt:22222222-2222-4222-8222-222222222222');
    // A second revocation (another operator, the CLI) leaves the first revoker on record.
    expect(await keys.revoke(leaked.record.id, CLI_CALLER)).toBe('already_revoked');
    expect(await keys.find(leaked.record.id)).toMatchObject({ revokedBy: 'jwt:22222222-2222-4222-8222-222222222222' });
    expect(await keys.find(child.record.id)).toMatchObject({ revokedAt: null, revokedBy: null });
  });

  it("gives a key that replaces another that key's Idempotency-Keys, down a chain of rotations; refuses one of another role or none", async () => {
    const first = await keys.create({ name: 'rotated-1', role: 'service' });
    expect(first.record.idempotencyScope).toBe(first.record.id);
    expect(await keys.authenticate(first.key)).not.toHaveProperty('idempotencyScope');
    const second = await keys.create({ name: 'rotated-2', role: 'service', replaces: first.record.id });
    const third = await keys.create({ name: 'rotated-3', role: 'service', replaces: second.record.id });
    for (const rotated of [second, third]) {
      expect(rotated.record.idempotencyScope).toBe(first.record.id);
      await expect(keys.authenticate(rotated.key)).resolves.toMatchObject({ subject: rotated.record.id, idempotencyScope: first.record.id });
    }
    // A revoked key can still be replaced (revoked first, its retries refused meanwhile).
    await keys.revoke(first.record.id, CLI_CALLER);
    await expect(keys.create({ name: 'rotated-4', role: 'service', replaces: first.record.id })).resolves.toMatchObject({ record: { idempotencyScope: first.record.id } });
    for (const replaces of [first.record.id, 'f'.repeat(24)]) {
      await expect(keys.create({ name: `not-${replaces}`, role: 'admin', replaces })).rejects.toMatchObject({ code: 'API_KEY_REPLACES_INVALID', details: { field: 'replaces' } });
    }
  });

  it('lets a key that manages keys replace only a key that can do no more than it (403 naming the scopes it lacks)', async () => {
    const integrator = await keys.create({ name: 'other-integrator', role: 'service', scopes: ['usage:write', 'accounts:read'] });
    const manager = await keys.authenticate((await keys.create({ name: 'usage-manager', role: 'admin', scopes: ['api-keys:manage', 'usage:write'] })).key);
    await expect(keys.create({ name: 'joined', role: 'service', scopes: ['usage:write'], replaces: integrator.record.id, grantor: manager })).rejects.toMatchObject({
      code: 'FORBIDDEN',
      details: { missingScopes: ['accounts:read'] },
    });
    const narrow = await keys.create({ name: 'usage-backend', role: 'service', scopes: ['usage:write'] });
    await expect(keys.create({ name: 'usage-backend-2', role: 'service', scopes: ['usage:write'], replaces: narrow.record.id, grantor: manager })).resolves.toMatchObject({ record: { idempotencyScope: narrow.record.id } });
    // A wide key rotated to a narrow one: the narrow one's chain still holds the wide one's scopes.
    const rotatedNarrow = await keys.create({ name: 'other-integrator-2', role: 'service', scopes: ['usage:write'], replaces: integrator.record.id });
    await expect(keys.create({ name: 'joined-2', role: 'service', scopes: ['usage:write'], replaces: rotatedNarrow.record.id, grantor: manager })).rejects.toMatchObject({
      code: 'FORBIDDEN',
      details: { missingScopes: ['accounts:read'] },
    });
    // A key of another role is no key to replace, whatever its scopes: 400 naming replaces.
    const auditor = await keys.create({ name: 'auditor-key', role: 'auditor' });
    await expect(keys.create({ name: 'cross-role', role: 'service', scopes: ['usage:write'], replaces: auditor.record.id, grantor: manager })).rejects.toMatchObject({ code: 'API_KEY_REPLACES_INVALID' });
  });

  it('refuses a key after its expiry (API_KEY_EXPIRED), and an expiry that is not in the future', async () => {
    const { key, record } = await keys.create({ name: 'short-lived', role: 'service', expiresAt: new Date(Date.now() + 60_000) });
    await expect(keys.authenticate(key)).resolves.toMatchObject({ subject: record.id });
    await database.pool.query("UPDATE api_keys SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 second' WHERE id = $1", [record.id]);
    expect(await refusal(key)).toBe('API_KEY_EXPIRED');
    await expect(keys.create({ name: 'past', role: 'service', expiresAt: new Date(Date.now() - 1_000) })).rejects.toMatchObject({ code: 'API_KEY_EXPIRY_INVALID' });
    // An expired key keeps its name until it is revoked (as the README and the 409's detail say).
    await expect(keys.create({ name: 'short-lived', role: 'service' })).rejects.toBeInstanceOf(ApiKeyNameTakenError);
    await keys.revoke(record.id, CLI_CALLER);
    await expect(keys.create({ name: 'short-lived', role: 'service' })).resolves.toMatchObject({ record: { name: 'short-lived' } });
  });

  it('creates a key in the tlk_<id>_<secret> form and stores only the hash of its secret', async () => {
    const { key, record } = await keys.create({ name: 'billing-backend', role: 'service' });
    expect(key).toMatch(API_KEY_PATTERN);
    const parsed = parseApiKey(key);
    expect(parsed?.id).toBe(record.id);
    const rows = await database.pool.query<{ hash: Buffer; name: string; role: string }>('SELECT hash, name, role FROM api_keys WHERE id = $1', [record.id]);
    expect(rows.rows).toEqual([{ hash: hashApiKeySecret(parsed?.secret ?? ''), name: 'billing-backend', role: 'service' }]);
    const stored = JSON.stringify(await database.pool.query('SELECT * FROM api_keys'));
    expect(stored).not.toContain(parsed?.secret);
    expect(record).toMatchObject({ name: 'billing-backend', role: 'service', revokedAt: null, lastUsedAt: null });
  });

  it('authenticates a key as its role, with the key id as subject, and records its use', async () => {
    const { key, record } = await keys.create({ name: 'auditor-tool', role: 'auditor' });
    await expect(keys.authenticate(key)).resolves.toEqual({ subject: record.id, role: 'auditor', kind: 'api_key', scopes: ['accounts:read', 'audit:read', 'projections:read'] });
    const used = await keys.find(record.id);
    expect(used?.lastUsedAt).toBeInstanceOf(Date);
    // Within the resolution, a second use does not write again.
    await keys.authenticate(key);
    expect((await keys.find(record.id))?.lastUsedAt).toEqual(used?.lastUsedAt);
  });

  it('records a use again once the last recorded one is older than the resolution', async () => {
    const { key, record } = await keys.create({ name: 'stale-use', role: 'service' });
    await database.pool.query("UPDATE api_keys SET last_used_at = now() - interval '61 seconds' WHERE id = $1", [record.id]);
    const stale = (await keys.find(record.id))?.lastUsedAt;
    await keys.authenticate(key);
    const recorded = (await keys.find(record.id))?.lastUsedAt;
    expect(recorded?.getTime()).toBeGreaterThan((stale?.getTime() ?? Number.POSITIVE_INFINITY) + 60_000);
  });

  it('refuses malformed keys, unknown ids and wrong secrets alike', async () => {
    const { key } = await keys.create({ name: 'wrong-secret-target', role: 'admin' });
    const parsed = parseApiKey(key);
    const otherSecret = `${parsed?.secret.startsWith('A') === true ? 'B' : 'A'}${parsed?.secret.slice(1) ?? ''}`;
    expect(await refusal(`tlk_${parsed?.id ?? ''}_${otherSecret}`)).toBe('API_KEY_INVALID');
    expect(await refusal(`tlk_${'0'.repeat(24)}_${parsed?.secret ?? ''}`)).toBe('API_KEY_INVALID');
    for (const malformed of ['', 'tlk_', key.slice(0, -1), `${key}x`, key.replace('tlk_', 'tlx_'), ` ${key}`]) {
      expect(await refusal(malformed)).toBe('API_KEY_INVALID');
    }
  });

  it('refuses a revoked key and keeps its revocation time', async () => {
    const { key, record } = await keys.create({ name: 'to-revoke', role: 'service' });
    expect(await keys.revoke(record.id, CLI_CALLER)).toBe('revoked');
    const revokedAt = (await keys.find(record.id))?.revokedAt;
    expect(revokedAt).toBeInstanceOf(Date);
    expect(await refusal(key)).toBe('API_KEY_REVOKED');
    expect(await keys.revoke(record.id, CLI_CALLER)).toBe('already_revoked');
    expect((await keys.find(record.id))?.revokedAt).toEqual(revokedAt);
    expect(await keys.revoke('f'.repeat(24), CLI_CALLER)).toBe('not_found');
  });

  it('refuses a second active key with the same name, and frees the name on revocation', async () => {
    const first = await keys.create({ name: 'rotating', role: 'service' });
    await expect(keys.create({ name: 'rotating', role: 'admin' })).rejects.toBeInstanceOf(ApiKeyNameTakenError);
    await keys.revoke(first.record.id, CLI_CALLER);
    const second = await keys.create({ name: 'rotating', role: 'service' });
    await expect(keys.authenticate(second.key)).resolves.toMatchObject({ subject: second.record.id });
    expect(await refusal(first.key)).toBe('API_KEY_REVOKED');
  });

  it('refuses the user role and names outside 1..100 characters, writing nothing', async () => {
    const before = await database.pool.query('SELECT count(*)::int AS count FROM api_keys');
    await expect(keys.create({ name: 'x', role: 'user' as 'service' })).rejects.toThrow(RangeError);
    await expect(keys.create({ name: '', role: 'service' })).rejects.toThrow(RangeError);
    await expect(keys.create({ name: 'x'.repeat(101), role: 'service' })).rejects.toThrow(RangeError);
    await expect(database.pool.query("INSERT INTO api_keys (id, name, role, hash) VALUES ('0123456789abcdef01234567', 'direct', 'user', decode(repeat('00', 32), 'hex'))")).rejects.toThrow('api_keys_role_check');
    expect((await database.pool.query('SELECT count(*)::int AS count FROM api_keys')).rows).toEqual(before.rows);
  });

  it('lets exactly one of 20 racing creations with one name succeed', async () => {
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => keys.create({ name: 'raced-name', role: 'service' })));
    const created = results.filter((result) => result.status === 'fulfilled');
    const refused = results.filter((result) => result.status === 'rejected');
    expect(created).toHaveLength(1);
    expect(refused.map((result) => result.reason)).toEqual(Array(19).fill(expect.any(ApiKeyNameTakenError)));
    const rows = await database.pool.query("SELECT count(*)::int AS count FROM api_keys WHERE name = 'raced-name'");
    expect(rows.rows).toEqual([{ count: 1 }]);
  });

  it('revokes exactly once when 20 revocations race, while uses of the key race with them', async () => {
    const { key, record } = await keys.create({ name: 'raced-revoke', role: 'service' });
    const uses = Array.from({ length: 20 }, () => keys.authenticate(key).then(() => 'accepted', (error: unknown) => (error instanceof AuthenticationError ? error.code : 'other')));
    const revocations = await Promise.all(Array.from({ length: 20 }, () => keys.revoke(record.id, CLI_CALLER)));
    expect(revocations.filter((outcome) => outcome === 'revoked')).toHaveLength(1);
    expect(revocations.filter((outcome) => outcome === 'already_revoked')).toHaveLength(19);
    for (const outcome of await Promise.all(uses)) expect(['accepted', 'API_KEY_REVOKED']).toContain(outcome);
    expect(await refusal(key)).toBe('API_KEY_REVOKED');
    const row = await database.pool.query<{ revoked: boolean }>('SELECT revoked_at IS NOT NULL AS revoked FROM api_keys WHERE id = $1', [record.id]);
    expect(row.rows).toEqual([{ revoked: true }]);
  });

  it('lists keys newest first without their hashes', async () => {
    const listed = await keys.list();
    expect(listed.length).toBeGreaterThanOrEqual(5);
    for (const record of listed) expect(Object.keys(record).sort()).toEqual(['createdAt', 'createdBy', 'expiresAt', 'id', 'idempotencyScope', 'lastUsedAt', 'name', 'revokedAt', 'revokedBy', 'role', 'scopes']);
    const times = listed.map((record) => record.createdAt.getTime());
    expect(times).toEqual([...times].sort((left, right) => right - left));
  });

  it('refuses a name with surrounding white space or a control, line-separator or direction character, or of invisible characters alone, whoever creates the key (the CLI too)', async () => {
    for (const name of [' billing', 'billing ', 'billing\nbackend', 'billing\u2028backend', 'billing\u202ebackend', 'billing\u0085backend', '\u200b', '\u3164\u200b', '\u2800']) {
      await expect(keys.create({ name, role: 'service' })).rejects.toThrow(RangeError);
    }
    await expect(keys.create({ name: 'billing-backend-\u{1F389}', role: 'service' })).resolves.toMatchObject({ record: { name: 'billing-backend-\u{1F389}' } });
  });
});
