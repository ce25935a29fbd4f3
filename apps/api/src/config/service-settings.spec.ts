import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, DEVELOPMENT_WEBHOOK_SECRET, loadConfig } from './app.config.js';
import { loadServiceSettings } from './service-settings.js';

let directory: string;
let production: Record<string, string>;

beforeEach(async () => {
  directory = await mkdtemp(path.join(tmpdir(), 'service-settings-'));
  const signingKey = path.join(directory, 'audit.pem');
  await writeFile(signingKey, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
  // A production configuration with nothing unsafe in it.
  production = {
    NODE_ENV: 'production',
    DATA_DIR: path.join(directory, 'data'),
    DATABASE_URL: 'postgres://token_ledger:database-password@db.internal:5432/token_ledger',
    PAYMENT_PROVIDER: 'none',
    PAYMENT_WEBHOOK_SECRET: 'a-production-webhook-secret-0123456789',
    AUTH_JWT_SECRET: 'a-production-jwt-secret-of-at-least-32-characters',
    AUTH_JWT_ISSUER: 'https://id.example/',
    AUTH_JWT_AUDIENCE: 'token-ledger',
    AUDIT_SIGNING_KEY_FILE: signingKey,
  };
});

afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

function problemsOf(environment: NodeJS.ProcessEnv): string {
  try {
    loadServiceSettings(environment);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  return 'accepted';
}

describe('the settings of the service', () => {
  it('accepts a production configuration that names its own database, provider, secrets, issuer and audience', () => {
    expect(problemsOf(production)).toBe('accepted');
    expect(problemsOf({ ...production, DATABASE_URL: undefined, EMBEDDED_POSTGRES_IN_PRODUCTION: 'true' })).toBe('accepted');
  });

  it("starts in production with Stripe and no PAYMENT_WEBHOOK_SECRET, which only the mock's route reads", () => {
    const { PAYMENT_WEBHOOK_SECRET: _unused, ...withoutMockSecret } = production;
    expect(problemsOf({ ...withoutMockSecret, PAYMENT_PROVIDER: 'stripe', STRIPE_SECRET_KEY: 'sk_live_0123456789abcdef', STRIPE_WEBHOOK_SECRET: 'whsec_0123456789abcdef' })).toBe('accepted');
  });

  it('refuses a Stripe test-mode key in production, whose test cards move no money, unless a staging deployment allows it', () => {
    const stripe = { PAYMENT_PROVIDER: 'stripe', STRIPE_WEBHOOK_SECRET: 'whsec_0123456789abcdef' };
    const refusal =
      'STRIPE_SECRET_KEY=(hidden): a test-mode key, whose test cards move no money (free tokens); production needs a live key (sk_live_…, rk_live_…), or STRIPE_TEST_MODE_IN_PRODUCTION=true for a staging deployment';
    for (const key of ['sk_test_0123456789abcdef', 'rk_test_0123456789abcdef']) {
      const message = problemsOf({ ...production, ...stripe, STRIPE_SECRET_KEY: key });
      expect(message.split('\n').map((line) => line.trim())).toEqual(['invalid configuration:', refusal]);
      expect(message).not.toContain(key);
      expect(problemsOf({ ...production, ...stripe, STRIPE_SECRET_KEY: key, STRIPE_TEST_MODE_IN_PRODUCTION: 'true' })).toBe('accepted');
      expect(problemsOf({ ...production, ...stripe, STRIPE_SECRET_KEY: key, STRIPE_TEST_MODE_IN_PRODUCTION: 'false' })).toContain(refusal);
      // Outside production, test mode is what development and tests use.
      expect(problemsOf({ ...stripe, STRIPE_SECRET_KEY: key })).toBe('accepted');
    }
    expect(problemsOf({ ...production, ...stripe, STRIPE_SECRET_KEY: 'rk_live_0123456789abcdef' })).toBe('accepted');
  });

  it('reports every unsafe production setting, of the service and of authentication, in one message', () => {
    const message = problemsOf({ NODE_ENV: 'production', PORT: 'eighty' });
    const lines = message.split('\n').slice(1).map((line) => line.trim());
    expect(message.split('\n')[0]).toBe('invalid configuration:');
    expect(lines).toEqual([
      expect.stringMatching(/^PORT="eighty": /),
      'PAYMENT_PROVIDER=mock: the mock provider approves every capture (free tokens); production needs a real provider, or PAYMENT_PROVIDER=none for no payments',
      'DATABASE_URL=(unset): production needs a PostgreSQL server; the embedded one is for a single machine only, allowed with EMBEDDED_POSTGRES_IN_PRODUCTION=true',
      'NODE_ENV=production needs AUTH_JWT_SECRET, AUTH_JWKS_URL or AUTH_JWKS_FILE: development secrets are not used in production',
      'NODE_ENV=production needs AUDIT_SIGNING_KEY_FILE (an Ed25519 private key) to sign audit bundles',
      'NODE_ENV=production needs AUTH_JWT_ISSUER: tokens of another issuer must be refused',
      'NODE_ENV=production needs AUTH_JWT_AUDIENCE: tokens meant for another service must be refused',
    ]);
  });

  it.each([
    ['the mock provider', { PAYMENT_PROVIDER: 'mock' }, 'PAYMENT_PROVIDER=mock: the mock provider approves every capture'],
    ['the embedded PostgreSQL without the opt-in', { DATABASE_URL: undefined }, 'DATABASE_URL=(unset): production needs a PostgreSQL server'],
    ['the embedded PostgreSQL with a refused opt-in', { DATABASE_URL: undefined, EMBEDDED_POSTGRES_IN_PRODUCTION: 'false' }, 'allowed with EMBEDDED_POSTGRES_IN_PRODUCTION=true'],
    ['the public development webhook secret', { PAYMENT_WEBHOOK_SECRET: DEVELOPMENT_WEBHOOK_SECRET }, 'PAYMENT_WEBHOOK_SECRET=(hidden): it is the public development secret'],
    ['no JWT issuer', { AUTH_JWT_ISSUER: undefined }, 'NODE_ENV=production needs AUTH_JWT_ISSUER'],
    ['no JWT audience', { AUTH_JWT_AUDIENCE: undefined }, 'NODE_ENV=production needs AUTH_JWT_AUDIENCE'],
    ['no JWT secret or key set', { AUTH_JWT_SECRET: undefined }, 'NODE_ENV=production needs AUTH_JWT_SECRET, AUTH_JWKS_URL or AUTH_JWKS_FILE'],
    ['no bundle signing key', { AUDIT_SIGNING_KEY_FILE: undefined }, 'NODE_ENV=production needs AUDIT_SIGNING_KEY_FILE'],
  ])('refuses %s in production, and only that', (_label, change, expected) => {
    const message = problemsOf({ ...production, ...change });
    expect(message).toContain(expected);
    expect(message.split('\n')).toHaveLength(2);
  });

  it('keeps the mock provider, the embedded PostgreSQL and the development secrets for development and tests', () => {
    expect(problemsOf({})).toBe('accepted');
    expect(problemsOf({ NODE_ENV: 'test', PAYMENT_WEBHOOK_SECRET: DEVELOPMENT_WEBHOOK_SECRET })).toBe('accepted');
  });

  it('never prints a secret: a short webhook secret, the password of a DATABASE_URL', () => {
    const message = problemsOf({ ...production, PAYMENT_WEBHOOK_SECRET: 'short-hook-key', DATABASE_URL: 'postgres://token_ledger:database-password@db.internal/token_ledger?sslmode=bogus&x', PORT: '-1' });
    expect(message).toContain('PAYMENT_WEBHOOK_SECRET=(hidden): PAYMENT_WEBHOOK_SECRET must be longer than or equal to 16 characters');
    expect(message).not.toContain('short-hook-key');
    const malformed = problemsOf({ ...production, DATABASE_URL: 'postgres://token_ledger:database-password@' });
    expect(malformed).toContain('DATABASE_URL=');
    expect(malformed).toContain('DATABASE_URL must be a URL such as postgres://user:password@host:5432/database');
    expect(malformed).not.toContain('database-password');
  });
});

describe('loadConfig', () => {
  it('listens on the loopback address unless HOST says otherwise', () => {
    expect(loadConfig({}).HOST).toBe('127.0.0.1');
    expect(loadConfig({ HOST: '0.0.0.0' }).HOST).toBe('0.0.0.0');
  });

  it.each(['postgres://', 'mysql://u:p@h/db', 'postgres://h:port/db', 'not a url', 'postgres://user:p@ss@host/db'])('refuses the malformed DATABASE_URL %s, naming it', (url) => {
    expect(() => loadConfig({ DATABASE_URL: url })).toThrow(/DATABASE_URL=.*DATABASE_URL must be a URL such as postgres:\/\/user:password@host:5432\/database/);
  });

  it.each(['postgres://token_ledger:secret@db.internal:5432/token_ledger?sslmode=require', 'postgresql://db.internal/ledger', 'postgres://u@[::1]:5432/db'])('accepts the DATABASE_URL %s', (url) => {
    expect(loadConfig({ DATABASE_URL: url }).DATABASE_URL).toBe(url);
  });
});
