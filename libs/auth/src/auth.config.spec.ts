import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAuthConfig, resolveAuthSettings } from './auth.config.js';
import { AuthConfigError } from './setting-file.js';
import { loadOrCreateDevelopmentSecrets } from './development-secrets.js';

const secret = 'a-configured-secret-of-32-characters-or-more';
const issuerAndAudience = { AUTH_JWT_ISSUER: 'https://id.example/', AUTH_JWT_AUDIENCE: 'token-ledger' };
let directory: string;

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'auth-config-'));
});

afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

function problems(environment: NodeJS.ProcessEnv): string {
  try {
    loadAuthConfig(environment);
  } catch (error) {
    if (error instanceof AuthConfigError) return error.message;
    throw error;
  }
  return 'accepted';
}

async function signingKeyFile(): Promise<string> {
  const path = join(directory, 'audit.pem');
  await writeFile(path, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
  return path;
}

describe('loadAuthConfig', () => {
  it('has working defaults outside production', () => {
    expect(loadAuthConfig({})).toMatchObject({ NODE_ENV: 'development', AUTH_ROLES_CLAIM: 'app_metadata.roles', AUTH_CLOCK_TOLERANCE_SECONDS: 30, AUTH_JWT_ALGORITHMS: ['RS256', 'ES256'], AUTH_JWT_MAX_LIFETIME_SECONDS: 86_400 });
  });

  it('refuses to start in production without a token secret or key set, and without a bundle signing key', () => {
    const message = problems({ NODE_ENV: 'production' });
    expect(message).toContain('NODE_ENV=production needs AUTH_JWT_SECRET, AUTH_JWKS_URL or AUTH_JWKS_FILE');
    expect(message).toContain('NODE_ENV=production needs AUDIT_SIGNING_KEY_FILE');
    expect(problems({ NODE_ENV: 'production', AUTH_JWT_SECRET: secret })).toContain('AUDIT_SIGNING_KEY_FILE');
    expect(problems({ NODE_ENV: 'production', AUDIT_SIGNING_KEY_FILE: '/keys/audit.pem' })).toContain('AUTH_JWKS_URL');
    expect(problems({ NODE_ENV: 'production', AUTH_JWT_SECRET: secret, AUDIT_SIGNING_KEY_FILE: '/keys/audit.pem', ...issuerAndAudience })).toBe('accepted');
    expect(problems({ NODE_ENV: 'production', AUTH_JWKS_URL: 'https://id.example/jwks.json', AUDIT_SIGNING_KEY_FILE: '/keys/audit.pem', ...issuerAndAudience })).toBe('accepted');
  });

  it('refuses production without a JWT issuer and audience, naming each', () => {
    const message = problems({ NODE_ENV: 'production', AUTH_JWT_SECRET: secret, AUDIT_SIGNING_KEY_FILE: '/keys/audit.pem' });
    expect(message).toContain('NODE_ENV=production needs AUTH_JWT_ISSUER');
    expect(message).toContain('NODE_ENV=production needs AUTH_JWT_AUDIENCE');
    expect(problems({ NODE_ENV: 'production', AUTH_JWT_SECRET: secret, AUDIT_SIGNING_KEY_FILE: '/keys/audit.pem', AUTH_JWT_ISSUER: 'https://id.example/' })).not.toContain('AUTH_JWT_ISSUER');
    // Outside production they stay optional.
    expect(problems({})).toBe('accepted');
  });

  it('refuses the development secrets of DATA_DIR in production, without printing them', async () => {
    const development = await loadOrCreateDevelopmentSecrets(directory);
    const message = problems({ NODE_ENV: 'production', DATA_DIR: directory, AUTH_JWT_SECRET: development.jwtSecret, AUDIT_SIGNING_KEY_FILE: join(directory, 'secrets', 'audit-signing-key.pem'), ...issuerAndAudience });
    expect(message).toContain(`AUTH_JWT_SECRET=(hidden): it is the development secret kept in ${join(directory, 'secrets', 'jwt-secret')}`);
    expect(message).toContain('AUDIT_SIGNING_KEY_FILE=');
    expect(message).toContain('it is the development key under DATA_DIR; production needs its own');
    expect(message).not.toContain(development.jwtSecret);
    // A copy of the development key kept elsewhere is the same key.
    const copy = join(directory, 'copied-audit-key.pem');
    // Copied with Windows line ends: the same key, other bytes.
    await writeFile(copy, (await readFile(join(directory, 'secrets', 'audit-signing-key.pem'), 'utf8')).replaceAll('\n', '\r\n'));
    expect(problems({ NODE_ENV: 'production', DATA_DIR: directory, AUTH_JWT_SECRET: 'a-production-secret-of-32-characters!', AUDIT_SIGNING_KEY_FILE: copy, ...issuerAndAudience })).toContain(
      `AUDIT_SIGNING_KEY_FILE=${JSON.stringify(copy)}: it is the development key under DATA_DIR; production needs its own`,
    );
    // Outside production a development instance may name them.
    expect(problems({ DATA_DIR: directory, AUTH_JWT_SECRET: development.jwtSecret })).toBe('accepted');
  });

  it('names each bad variable and its rule, never printing the secret', () => {
    const message = problems({ AUTH_JWT_SECRET: 'short-secret', AUTH_JWT_MAX_LIFETIME_SECONDS: '59', AUTH_CLOCK_TOLERANCE_SECONDS: '301', AUTH_JWT_ALGORITHMS: 'RS256,HS512', AUTH_ROLES_CLAIM: 'roles..x', AUTH_JWKS_URL: 'ftp://x' });
    expect(message).toContain('AUTH_JWT_SECRET=(hidden)');
    expect(message).not.toContain('short-secret');
    expect(message).toContain('AUTH_CLOCK_TOLERANCE_SECONDS=301');
    expect(message).toContain('AUTH_JWT_MAX_LIFETIME_SECONDS=59');
    expect(message).toContain('AUTH_JWT_ALGORITHMS must be a comma-separated list of RS256, ES256');
    expect(message).toContain('AUTH_ROLES_CLAIM must be a dotted claim path');
    expect(message).toContain('AUTH_JWKS_URL must be an http:// or https:// URL');
  });

  it('refuses two key set sources and a plain-http key set in production', () => {
    expect(problems({ AUTH_JWKS_URL: 'https://id.example/jwks.json', AUTH_JWKS_FILE: '/jwks.json' })).toContain('set one, not both');
    expect(problems({ NODE_ENV: 'production', AUTH_JWKS_URL: 'http://id.example/jwks.json', AUDIT_SIGNING_KEY_FILE: '/k.pem' })).toContain('must be https:// in production');
  });
});

describe('resolveAuthSettings', () => {
  it('creates development secrets once and reuses them', async () => {
    const config = loadAuthConfig({ DATA_DIR: directory });
    const first = await resolveAuthSettings(config);
    const second = await resolveAuthSettings(config);
    expect(first.secretsSource).toBe('development');
    expect(first.jwt.hs256Secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(second).toEqual(first);
    expect(first.auditSigningKeyPem).toContain('BEGIN PRIVATE KEY');
    expect((await stat(join(directory, 'secrets', 'jwt-secret'))).mode & 0o777).toBe(0o600);
  });

  it('gives every one of several processes starting at once the same development secret', async () => {
    const all = await Promise.all(Array.from({ length: 10 }, () => loadOrCreateDevelopmentSecrets(directory)));
    expect(new Set(all.map((secrets) => secrets.jwtSecret)).size).toBe(1);
    expect(new Set(all.map((secrets) => secrets.auditSigningKeyPem)).size).toBe(1);
  });

  it('uses the configured secrets and creates nothing when everything is configured', async () => {
    const config = loadAuthConfig({ NODE_ENV: 'production', DATA_DIR: directory, AUTH_JWT_SECRET: secret, AUDIT_SIGNING_KEY_FILE: await signingKeyFile(), AUTH_JWT_ISSUER: 'https://id.example', AUTH_JWT_AUDIENCE: 'token-ledger' });
    const settings = await resolveAuthSettings(config);
    expect(settings).toMatchObject({ secretsSource: 'configured', jwt: { hs256Secret: secret, issuer: 'https://id.example', jwks: undefined } });
    await expect(stat(join(directory, 'secrets'))).rejects.toThrow('ENOENT');
  });

  it('does not add the development HS256 secret when a key set is configured, and reads the key set file with the settings', async () => {
    const file = join(directory, 'jwks.json');
    const keySet = { keys: [generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' })] };
    await writeFile(file, JSON.stringify(keySet));
    const config = loadAuthConfig({ DATA_DIR: directory, AUTH_JWKS_FILE: file });
    const settings = await resolveAuthSettings(config);
    expect(settings.jwt).toMatchObject({ hs256Secret: undefined, jwks: { file, keySet } });
    expect(settings.secretsSource).toBe('development');
  });

  it('refuses a key set file that is missing, not JSON or not a key set, naming AUTH_JWKS_FILE and the path, before anything starts', async () => {
    const file = join(directory, 'jwks.json');
    const refusal = async () => resolveAuthSettings(loadAuthConfig({ DATA_DIR: directory, AUTH_JWT_SECRET: secret, AUTH_JWKS_FILE: file }));
    await expect(refusal()).rejects.toMatchObject({ name: 'AuthConfigError', problems: [`AUTH_JWKS_FILE=${file}: cannot read it (ENOENT)`] });
    await writeFile(file, '{"keys": [');
    await expect(refusal()).rejects.toMatchObject({ name: 'AuthConfigError', problems: [`AUTH_JWKS_FILE=${file}: the file is not JSON`] });
    for (const notAKeySet of ['{"kty": "EC"}', '{"keys": [1]}', '{"keys": "none"}', '[]']) {
      await writeFile(file, notAKeySet);
      await expect(refusal()).rejects.toMatchObject({ name: 'AuthConfigError', problems: [`AUTH_JWKS_FILE=${file}: the file is not a JSON Web Key Set (RFC 7517): an object with a "keys" array of keys`] });
    }
    await writeFile(file, '{"keys": []}');
    await expect(refusal()).rejects.toMatchObject({ name: 'AuthConfigError', problems: [`AUTH_JWKS_FILE=${file}: the key set has no key, so every token would be refused`] });
  });

  it('refuses a signing key file that cannot be read, naming AUDIT_SIGNING_KEY_FILE and the path', async () => {
    const missing = join(directory, 'missing.pem');
    const config = loadAuthConfig({ DATA_DIR: directory, AUTH_JWT_SECRET: secret, AUDIT_SIGNING_KEY_FILE: missing });
    await expect(resolveAuthSettings(config)).rejects.toMatchObject({ name: 'AuthConfigError', problems: [`AUDIT_SIGNING_KEY_FILE=${missing}: cannot read it (ENOENT)`] });
  });

  it('refuses a signing key that is not Ed25519', async () => {
    const path = join(directory, 'rsa.pem');
    await writeFile(path, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const config = loadAuthConfig({ DATA_DIR: directory, AUTH_JWT_SECRET: secret, AUDIT_SIGNING_KEY_FILE: path });
    await expect(resolveAuthSettings(config)).rejects.toThrow('must hold an Ed25519 private key');
  });
});
