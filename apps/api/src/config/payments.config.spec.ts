import { ConfigError, loadConfig, webhookSecretOf, DEVELOPMENT_WEBHOOK_SECRET } from './app.config.js';

describe('payments configuration', () => {
  it('defaults to the mock provider, a one-hour pending TTL and the built-in packages', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ PAYMENT_PROVIDER: 'mock', PAYMENT_PENDING_TTL: 3_600_000, PAYMENT_JOBS_ENABLED: true, IDEMPOTENCY_KEY_TTL_HOURS: 24 });
    expect(config.TOKEN_PACKAGES.map((item) => item.id)).toEqual(['starter', 'standard', 'pro']);
    expect(webhookSecretOf(config)).toBe(DEVELOPMENT_WEBHOOK_SECRET);
  });

  it('reads durations with units and packages as JSON', () => {
    const config = loadConfig({ PAYMENT_PENDING_TTL: '30m', TOKEN_PACKAGES: '[{"id":"mini","tokens":10,"price":99,"currency":"EUR"}]' });
    expect(config.PAYMENT_PENDING_TTL).toBe(1_800_000);
    expect(config.TOKEN_PACKAGES).toEqual([{ id: 'mini', tokens: 10, price: 99, currency: 'EUR' }]);
  });

  it.each([
    ['PAYMENT_PENDING_TTL', 'soon', /PAYMENT_PENDING_TTL=/],
    ['PAYMENT_PENDING_TTL', '10ms', /PAYMENT_PENDING_TTL=/],
    ['TOKEN_PACKAGES', 'not json', /TOKEN_PACKAGES=.*JSON array/],
    ['TOKEN_PACKAGES', '[{"id":"a","tokens":0,"price":1,"currency":"USD"}]', /TOKEN_PACKAGES=.*0\.tokens: tokens must not be less than 1/],
    ['TOKEN_PACKAGES', '[{"id":"a","tokens":1,"price":1.5,"currency":"usd"}]', /price must be an integer.*currency must be an ISO 4217 code/],
    ['TOKEN_PACKAGES', '[{"id":"a","tokens":1,"price":1,"currency":"USD"},{"id":"a","tokens":2,"price":2,"currency":"USD"}]', /ids must be unique/],
    ['IDEMPOTENCY_KEY_TTL_HOURS', '1', /IDEMPOTENCY_KEY_TTL_HOURS=/],
    ['PAYMENT_MOCK_BEHAVIOUR', 'random', /PAYMENT_MOCK_BEHAVIOUR=/],
    ['PAYMENT_WEBHOOK_TOLERANCE_SECONDS', '0', /PAYMENT_WEBHOOK_TOLERANCE_SECONDS=/],
    ['PAYMENT_RECONCILIATION_LOOKBACK', 'always', /PAYMENT_RECONCILIATION_LOOKBACK=/],
  ])('refuses %s=%s and says why', (key, value, message) => {
    expect(() => loadConfig({ [key]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [key]: value })).toThrow(message);
  });

  it('requires a webhook secret in production and uses the configured one', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/PAYMENT_WEBHOOK_SECRET is required when NODE_ENV=production/);
    const production = { NODE_ENV: 'production', PAYMENT_PROVIDER: 'none', DATABASE_URL: 'postgres://ledger@db.internal/ledger' };
    expect(webhookSecretOf(loadConfig({ ...production, PAYMENT_WEBHOOK_SECRET: 'a-long-enough-secret' }))).toBe('a-long-enough-secret');
  });

  it('defaults to a 5-minute webhook tolerance and a reconciliation of the last 72 hours every 5 minutes', () => {
    expect(loadConfig({})).toMatchObject({ PAYMENT_WEBHOOK_TOLERANCE_SECONDS: 300, PAYMENT_RECONCILIATION_LOOKBACK: 72 * 3_600_000, PAYMENT_RECONCILIATION_INTERVAL_MS: 300_000 });
    expect(loadConfig({ PAYMENT_WEBHOOK_TOLERANCE_SECONDS: '60', PAYMENT_RECONCILIATION_LOOKBACK: '24h' })).toMatchObject({ PAYMENT_WEBHOOK_TOLERANCE_SECONDS: 60, PAYMENT_RECONCILIATION_LOOKBACK: 86_400_000 });
  });

  it('accepts a crash point only in tests, and only a known one', () => {
    expect(loadConfig({ NODE_ENV: 'test', PAYMENT_CRASH_AT: 'refund:after-intent' }).PAYMENT_CRASH_AT).toBe('refund:after-intent');
    expect(() => loadConfig({ PAYMENT_CRASH_AT: 'refund:after-intent' })).toThrow(/PAYMENT_CRASH_AT is for crash tests: it needs NODE_ENV=test/);
    expect(() => loadConfig({ NODE_ENV: 'production', PAYMENT_WEBHOOK_SECRET: 'a-long-enough-secret', PAYMENT_CRASH_AT: 'refund:after-intent' })).toThrow(/PAYMENT_CRASH_AT/);
    expect(() => loadConfig({ NODE_ENV: 'test', PAYMENT_CRASH_AT: 'somewhere' })).toThrow(/PAYMENT_CRASH_AT=/);
  });
});
