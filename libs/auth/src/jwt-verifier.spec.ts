import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base64url, exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type GenerateKeyPairResult, type JWK, type JWTPayload } from 'jose';
import { AuthenticationError, KeySetUnavailableError } from './authentication.errors.js';
import { JwtVerifier, type JwtVerifierOptions } from './jwt-verifier.js';
import { mintToken, parseTtl } from './mint-token.js';

const secret = 'an-hs256-secret-of-at-least-32-characters';
const userId = '6f1c2a9e-4b7d-4e0a-9c3b-2d5e8f7a1b40';
const now = Math.floor(Date.now() / 1000);
const base: JwtVerifierOptions = { hs256Secret: secret, clockToleranceSeconds: 30, rolesClaim: 'app_metadata.roles' };

function hs256(claims: JWTPayload, key = secret, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ sub: userId, exp: now + 600, iat: now, ...claims })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT', ...header })
    .sign(new TextEncoder().encode(key));
}

async function refusal(verifier: JwtVerifier, token: string, currentDate?: Date): Promise<string> {
  try {
    await verifier.verify(token, currentDate);
  } catch (error) {
    if (error instanceof AuthenticationError) return error.code;
    throw error;
  }
  throw new Error('the token was accepted');
}

describe('JwtVerifier with a key set file', () => {
  it('refuses a file it cannot read, naming AUTH_JWKS_FILE and the path', async () => {
    await expect(JwtVerifier.create({ ...base, jwks: { file: '/nonexistent/jwks.json' } })).rejects.toMatchObject({
      name: 'AuthConfigError',
      problems: ['AUTH_JWKS_FILE=/nonexistent/jwks.json: cannot read it (ENOENT)'],
    });
  });
});

describe('JwtVerifier with HS256', () => {
  let verifier: JwtVerifier;
  beforeAll(async () => {
    verifier = await JwtVerifier.create(base);
  });

  it('accepts a valid token and reads the role from the configured claim', async () => {
    const token = await hs256({ app_metadata: { roles: ['auditor'] } });
    await expect(verifier.verify(token)).resolves.toEqual({ subject: userId, role: 'auditor', kind: 'jwt' });
  });

  it('reads a Supabase-style string claim such as role', async () => {
    const byRole = await JwtVerifier.create({ ...base, rolesClaim: 'role' });
    await expect(byRole.verify(await hs256({ role: 'admin' }))).resolves.toMatchObject({ role: 'admin' });
    // Supabase's own role for a signed-in user is `authenticated`: not one of ours, so `user`.
    await expect(byRole.verify(await hs256({ role: 'authenticated' }))).resolves.toMatchObject({ role: 'user' });
  });

  it('gives a token without roles the user role, and refuses one naming two', async () => {
    await expect(verifier.verify(await hs256({}))).resolves.toMatchObject({ role: 'user' });
    await expect(verifier.verify(await hs256({ app_metadata: { roles: ['authenticated', 'service'] } }))).resolves.toMatchObject({ role: 'service' });
    expect(await refusal(verifier, await hs256({ app_metadata: { roles: ['user', 'admin'] } }))).toBe('TOKEN_CLAIM_INVALID');
    expect(await refusal(verifier, await hs256({ app_metadata: { roles: [1] } }))).toBe('TOKEN_CLAIM_INVALID');
  });

  it('refuses an expired token, beyond the clock tolerance only', async () => {
    expect(await refusal(verifier, await hs256({ exp: now - 31 }))).toBe('TOKEN_EXPIRED');
    await expect(verifier.verify(await hs256({ exp: now - 5 }))).resolves.toMatchObject({ subject: userId });
    const strict = await JwtVerifier.create({ ...base, clockToleranceSeconds: 0 });
    expect(await refusal(strict, await hs256({ exp: now - 5 }))).toBe('TOKEN_EXPIRED');
  });

  it('refuses a token whose lifetime is longer than the maximum (24 hours by default), such as a 100-year one', async () => {
    const century = await hs256({ iat: now, exp: now + 100 * 365 * 86_400 });
    const refused = verifier.verify(century);
    await expect(refused).rejects.toMatchObject({ code: 'TOKEN_LIFETIME_TOO_LONG' });
    await expect(refused).rejects.toThrow(/at most 86400/);
    expect(await refusal(verifier, await hs256({ iat: now, exp: now + 86_401 }))).toBe('TOKEN_LIFETIME_TOO_LONG');
    await expect(verifier.verify(await hs256({ iat: now, exp: now + 86_400 }))).resolves.toMatchObject({ subject: userId });
  });

  it('measures a token without iat from now, and takes the configured maximum', async () => {
    const hour = await JwtVerifier.create({ ...base, lifetimeSecondsMax: 3_600 });
    const withoutIat = (exp: number) => new SignJWT({ sub: userId, exp }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));
    expect(await refusal(hour, await withoutIat(now + 3_700))).toBe('TOKEN_LIFETIME_TOO_LONG');
    await expect(hour.verify(await withoutIat(now + 3_500))).resolves.toMatchObject({ subject: userId });
    expect(await refusal(hour, await hs256({ iat: now - 100, exp: now + 3_550 }))).toBe('TOKEN_LIFETIME_TOO_LONG');
    await expect(JwtVerifier.create({ ...base, lifetimeSecondsMax: 0 })).rejects.toThrow(/lifetimeSecondsMax/);
  });

  it('measures a token whose iat is later than now (beyond the clock tolerance) from then: a future iat does not shorten a ten-year token', async () => {
    const tenYears = now + 10 * 365 * 86_400;
    const refused = verifier.verify(await hs256({ iat: tenYears - 60, exp: tenYears }));
    await expect(refused).rejects.toMatchObject({ code: 'TOKEN_LIFETIME_TOO_LONG' });
    await expect(refused).rejects.toThrow(/lifetime \(exp - now, plus the clock tolerance\)/);
    // An issuer whose clock is ahead by up to the tolerance (30 s) mints full-lifetime tokens that pass; by two minutes, not.
    const at = Math.floor(Date.now() / 1000);
    await expect(verifier.verify(await hs256({ iat: at + 30, exp: at + 30 + 86_400 }))).resolves.toMatchObject({ subject: userId });
    expect(await refusal(verifier, await hs256({ iat: at + 120, exp: at + 120 + 86_400 }))).toBe('TOKEN_LIFETIME_TOO_LONG');
  });

  it('refuses a token without exp', async () => {
    const token = await new SignJWT({ sub: userId, iat: now }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));
    expect(await refusal(verifier, token)).toBe('TOKEN_CLAIM_INVALID');
  });

  it('refuses a token it accepted before once it has expired, or at a time before its nbf', async () => {
    const token = await hs256({ nbf: now - 10, exp: now + 60, app_metadata: { roles: ['service'] } });
    await expect(verifier.verify(token)).resolves.toEqual({ subject: userId, role: 'service', kind: 'jwt' });
    await expect(verifier.verify(token, new Date((now + 89) * 1_000))).resolves.toMatchObject({ role: 'service' });
    expect(await refusal(verifier, token, new Date((now + 90) * 1_000))).toBe('TOKEN_EXPIRED');
    expect(await refusal(verifier, token, new Date((now - 41) * 1_000))).toBe('TOKEN_NOT_YET_VALID');
    await expect(verifier.verify(token)).resolves.toMatchObject({ role: 'service' });
  });

  it('refuses a token that is not valid yet', async () => {
    expect(await refusal(verifier, await hs256({ nbf: now + 120 }))).toBe('TOKEN_NOT_YET_VALID');
  });

  it('refuses a token signed with another secret', async () => {
    expect(await refusal(verifier, await hs256({}, 'another-secret-that-is-32-characters-long'))).toBe('TOKEN_SIGNATURE_INVALID');
  });

  it('refuses a token whose payload was changed after signing', async () => {
    const [header, , signature] = (await hs256({ app_metadata: { roles: ['user'] } })).split('.');
    const forged = base64url.encode(JSON.stringify({ sub: userId, exp: now + 600, app_metadata: { roles: ['admin'] } }));
    expect(await refusal(verifier, `${header}.${forged}.${signature}`)).toBe('TOKEN_SIGNATURE_INVALID');
  });

  it('refuses alg none, with or without a signature', async () => {
    const header = base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }));
    const payload = base64url.encode(JSON.stringify({ sub: userId, exp: now + 600, app_metadata: { roles: ['admin'] } }));
    expect(await refusal(verifier, `${header}.${payload}.`)).toBe('TOKEN_ALGORITHM_NOT_ALLOWED');
    const signed = (await hs256({})).split('.')[2] ?? '';
    expect(await refusal(verifier, `${header}.${payload}.${signed}`)).toBe('TOKEN_ALGORITHM_NOT_ALLOWED');
  });

  it('refuses malformed tokens', async () => {
    const payload = base64url.encode(JSON.stringify({ sub: userId, exp: now + 600 }));
    for (const token of ['', 'abc', 'a.b', 'a.b.c', `not-json.${payload}.c`, `${base64url.encode('{"alg":"HS256"')}.${payload}.c`, 'a.b.c.d.e']) {
      expect([token, await refusal(verifier, token)]).toEqual([token, 'TOKEN_MALFORMED']);
    }
    const notJsonPayload = `${base64url.encode(JSON.stringify({ alg: 'HS256' }))}.${base64url.encode('not json')}`;
    expect(await refusal(verifier, `${notJsonPayload}.${base64url.encode(await hmac(notJsonPayload))}`)).toBe('TOKEN_MALFORMED');
  });

  it('refuses a wrong or missing audience and issuer when they are configured', async () => {
    const bound = await JwtVerifier.create({ ...base, issuer: 'https://id.example', audience: 'token-ledger' });
    await expect(bound.verify(await hs256({ iss: 'https://id.example', aud: ['other', 'token-ledger'] }))).resolves.toMatchObject({ subject: userId });
    expect(await refusal(bound, await hs256({ iss: 'https://id.example', aud: 'other' }))).toBe('TOKEN_CLAIM_INVALID');
    expect(await refusal(bound, await hs256({ iss: 'https://id.example' }))).toBe('TOKEN_CLAIM_INVALID');
    expect(await refusal(bound, await hs256({ iss: 'https://evil.example', aud: 'token-ledger' }))).toBe('TOKEN_CLAIM_INVALID');
  });

  it('requires a UUID subject and an expiry', async () => {
    expect(await refusal(verifier, await hs256({ sub: 'alice' }))).toBe('TOKEN_CLAIM_INVALID');
    expect(await refusal(verifier, await hs256({ sub: undefined }))).toBe('TOKEN_CLAIM_INVALID');
    expect(await refusal(verifier, await hs256({ exp: undefined }))).toBe('TOKEN_CLAIM_INVALID');
  });

  it('refuses an HS256 secret shorter than 32 characters and a configuration without keys', async () => {
    await expect(JwtVerifier.create({ ...base, hs256Secret: 'short' })).rejects.toThrow('at least 32');
    await expect(JwtVerifier.create({ clockToleranceSeconds: 0, rolesClaim: 'role' })).rejects.toThrow('HS256 secret or a JWKS');
  });
});

async function hmac(input: string): Promise<Uint8Array> {
  const { createHmac } = await import('node:crypto');
  return createHmac('sha256', secret).update(input).digest();
}

describe('JwtVerifier with a JWKS', () => {
  let directory: string;
  let jwksFile: string;
  let rsa: GenerateKeyPairResult;
  let ec: GenerateKeyPairResult;
  let unlisted: GenerateKeyPairResult;
  let jwks: { keys: JWK[] };

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'jwks-'));
    rsa = await generateKeyPair('RS256', { extractable: true });
    ec = await generateKeyPair('ES256', { extractable: true });
    unlisted = await generateKeyPair('RS256', { extractable: true });
    jwks = {
      keys: [
        { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
        { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' },
      ],
    };
    jwksFile = join(directory, 'jwks.json');
    await writeFile(jwksFile, JSON.stringify(jwks));
  });

  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  function signed(alg: 'RS256' | 'ES256', key: CryptoKey, kid: string, claims: JWTPayload = {}): Promise<string> {
    return new SignJWT({ sub: userId, exp: now + 600, app_metadata: { roles: ['service'] }, ...claims }).setProtectedHeader({ alg, kid }).sign(key);
  }

  it('verifies RS256 and ES256 tokens with keys from a JWKS file', async () => {
    const verifier = await JwtVerifier.create({ jwks: { file: jwksFile }, clockToleranceSeconds: 0, rolesClaim: 'app_metadata.roles' });
    await expect(verifier.verify(await signed('RS256', rsa.privateKey, 'rsa-1'))).resolves.toEqual({ subject: userId, role: 'service', kind: 'jwt' });
    await expect(verifier.verify(await signed('ES256', ec.privateKey, 'ec-1'))).resolves.toEqual({ subject: userId, role: 'service', kind: 'jwt' });
  });

  it('refuses a key the set does not hold, and a signature by another key under a known kid', async () => {
    const verifier = await JwtVerifier.create({ jwks: { file: jwksFile }, clockToleranceSeconds: 0, rolesClaim: 'app_metadata.roles' });
    expect(await refusal(verifier, await signed('RS256', unlisted.privateKey, 'rsa-2'))).toBe('TOKEN_KEY_NOT_FOUND');
    expect(await refusal(verifier, await signed('RS256', unlisted.privateKey, 'rsa-1'))).toBe('TOKEN_SIGNATURE_INVALID');
  });

  it('refuses algorithms not configured: HS256 without a secret, ES256 when only RS256 is allowed', async () => {
    const rsaOnly = await JwtVerifier.create({ jwks: { file: jwksFile }, asymmetricAlgorithms: ['RS256'], clockToleranceSeconds: 0, rolesClaim: 'app_metadata.roles' });
    expect(rsaOnly.acceptedAlgorithms).toEqual(['RS256']);
    expect(await refusal(rsaOnly, await signed('ES256', ec.privateKey, 'ec-1'))).toBe('TOKEN_ALGORITHM_NOT_ALLOWED');
    expect(await refusal(rsaOnly, await hs256({}))).toBe('TOKEN_ALGORITHM_NOT_ALLOWED');
  });

  it('cannot be fooled into using the RSA public key as an HS256 secret', async () => {
    const both = await JwtVerifier.create({ ...base, jwks: { file: jwksFile } });
    const publicPem = await exportSPKI(rsa.publicKey);
    expect(await refusal(both, await hs256({}, publicPem, { kid: 'rsa-1' }))).toBe('TOKEN_SIGNATURE_INVALID');
    await expect(both.verify(await signed('RS256', rsa.privateKey, 'rsa-1'))).resolves.toMatchObject({ role: 'service' });
    await expect(both.verify(await hs256({}))).resolves.toMatchObject({ role: 'user' });
  });

  it('refuses a JWKS file that is not a key set', async () => {
    const bad = join(directory, 'bad.json');
    await writeFile(bad, '{"not":"keys"}');
    await expect(JwtVerifier.create({ jwks: { file: bad }, clockToleranceSeconds: 0, rolesClaim: 'role' })).rejects.toThrow('is not a JSON Web Key Set');
  });

  describe('from a URL', () => {
    let server: Server;
    let requests = 0;
    let url: string;

    beforeAll(async () => {
      server = createServer((_request, response) => {
        requests += 1;
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
    });

    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
    });

    it('fetches the set once and verifies RS256 and ES256 tokens', async () => {
      const verifier = await JwtVerifier.create({ jwks: { url }, clockToleranceSeconds: 0, rolesClaim: 'app_metadata.roles' });
      const before = requests;
      await expect(verifier.verify(await signed('RS256', rsa.privateKey, 'rsa-1'))).resolves.toMatchObject({ role: 'service' });
      await expect(verifier.verify(await signed('ES256', ec.privateKey, 'ec-1', { app_metadata: { roles: ['auditor'] } }))).resolves.toMatchObject({ role: 'auditor' });
      expect(requests - before).toBe(1);
    });

    it('reports an unreachable key set as unavailable, not as a bad token', async () => {
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const deadUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/jwks.json`;
      await new Promise((resolve) => closed.close(resolve));
      const verifier = await JwtVerifier.create({ jwks: { url: deadUrl }, clockToleranceSeconds: 0, rolesClaim: 'role', jwksTimeoutMs: 1_000 });
      await expect(verifier.verify(await signed('RS256', rsa.privateKey, 'rsa-1'))).rejects.toBeInstanceOf(KeySetUnavailableError);
    });
  });
});

describe('mintToken', () => {
  it('mints a token the verifier accepts with the role, subject and expiry asked for', async () => {
    const verifier = await JwtVerifier.create({ ...base, issuer: 'token-ledger-dev' });
    const token = await mintToken({ role: 'admin', sub: userId, ttl: '1h', secret, rolesClaim: 'app_metadata.roles', issuer: 'token-ledger-dev' });
    await expect(verifier.verify(token)).resolves.toEqual({ subject: userId, role: 'admin', kind: 'jwt' });
    const expired = await mintToken({ role: 'admin', sub: userId, ttl: 60, secret, rolesClaim: 'app_metadata.roles', issuer: 'token-ledger-dev', now: new Date(Date.now() - 3_600_000) });
    expect(await refusal(verifier, expired)).toBe('TOKEN_EXPIRED');
  });

  it('writes the role where a string claim path points', async () => {
    const verifier = await JwtVerifier.create({ ...base, rolesClaim: 'role' });
    const token = await mintToken({ role: 'service', sub: userId, ttl: 60, secret, rolesClaim: 'role' });
    await expect(verifier.verify(token)).resolves.toMatchObject({ role: 'service' });
  });

  it('parses ttl durations and refuses ones out of range', () => {
    expect([parseTtl('15m'), parseTtl('12h'), parseTtl('7d'), parseTtl(90), parseTtl('90'), parseTtl('90s')]).toEqual([900, 43_200, 604_800, 90, 90, 90]);
    for (const bad of [0, -1, 1.5, '31d', '1w', '', 'h', '0', '1.5', ' 90', '2592001']) expect(() => parseTtl(bad)).toThrow('ttl');
  });
});
