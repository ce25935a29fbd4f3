import { ConfigError, loadConfig, stripeSettingsOf, webhookSecretOf, DEVELOPMENT_WEBHOOK_SECRET } from './app.config.js';

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

  it("uses the mock's webhook secret only with the mock provider, so production (which refuses the mock) needs none", () => {
    expect(webhookSecretOf(loadConfig({ PAYMENT_WEBHOOK_SECRET: 'a-long-enough-secret' }))).toBe('a-long-enough-secret');
    const stripe = { STRIPE_SECRET_KEY: 'sk_live_0123456789abcdef', STRIPE_WEBHOOK_SECRET: 'whsec_0123456789abcdef' };
    expect(webhookSecretOf(loadConfig({ PAYMENT_PROVIDER: 'stripe', ...stripe, PAYMENT_WEBHOOK_SECRET: 'a-long-enough-secret' }))).toBeNull();
    const production = { NODE_ENV: 'production', DATABASE_URL: 'postgres://ledger@db.internal/ledger' };
    expect(webhookSecretOf(loadConfig({ ...production, PAYMENT_PROVIDER: 'none' }))).toBeNull();
    expect(webhookSecretOf(loadConfig({ ...production, PAYMENT_PROVIDER: 'stripe', ...stripe }))).toBeNull();
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

  describe('PAYMENT_PROVIDER=stripe', () => {
    const stripe = { PAYMENT_PROVIDER: 'stripe', STRIPE_SECRET_KEY: 'sk_live_0123456789abcdef', STRIPE_WEBHOOK_SECRET: 'whsec_0123456789abcdef' };
    const production = { NODE_ENV: 'production', DATABASE_URL: 'postgres://ledger@db.internal/ledger', PAYMENT_WEBHOOK_SECRET: 'a-long-enough-secret' };

    it('refuses a package price in a three-decimal currency that Stripe would refuse (not a multiple of 10), naming the package; other currencies and providers as given', () => {
      const packages = (price: number, currency: string) => JSON.stringify([{ id: 'kw', tokens: 100, price, currency }]);
      expect(() => loadConfig({ ...stripe, TOKEN_PACKAGES: packages(5_125, 'KWD') })).toThrow(/TOKEN_PACKAGES: package "kw" costs 5125 KWD: Stripe takes KWD in thousandths with the last digit 0/);
      expect(loadConfig({ ...stripe, TOKEN_PACKAGES: packages(5_120, 'KWD') }).TOKEN_PACKAGES[0]).toMatchObject({ price: 5_120 });
      expect(loadConfig({ ...stripe, TOKEN_PACKAGES: packages(5_125, 'USD') }).TOKEN_PACKAGES[0]).toMatchObject({ price: 5_125 });
      expect(loadConfig({ TOKEN_PACKAGES: packages(5_125, 'KWD') }).TOKEN_PACKAGES[0]).toMatchObject({ price: 5_125 });
    });

    it('refuses a package price in ISK that is not whole krónur (a multiple of 100), which Stripe would refuse, naming the package', () => {
      const packages = (price: number) => JSON.stringify([{ id: 'is', tokens: 100, price, currency: 'ISK' }]);
      expect(() => loadConfig({ ...stripe, TOKEN_PACKAGES: packages(49_950) })).toThrow(/TOKEN_PACKAGES: package "is" costs 49950 ISK: Stripe takes ISK in hundredths but charges only whole units \(a multiple of 100\)/);
      expect(loadConfig({ ...stripe, TOKEN_PACKAGES: packages(50_000) }).TOKEN_PACKAGES[0]).toMatchObject({ price: 50_000 });
      expect(loadConfig({ TOKEN_PACKAGES: packages(49_950) }).TOKEN_PACKAGES[0]).toMatchObject({ price: 49_950 });
    });

    it('reads its settings, with auto-capture on, Stripe\'s API, 2 retries and a 5 s timeout by default', () => {
      expect(stripeSettingsOf(loadConfig(stripe))).toEqual({
        secretKey: stripe.STRIPE_SECRET_KEY,
        webhookSecret: stripe.STRIPE_WEBHOOK_SECRET,
        autoCapture: true,
        apiUrl: 'https://api.stripe.com',
        maxNetworkRetries: 2,
        timeoutMs: 5_000,
        webhookToleranceSeconds: 300,
      });
      expect(stripeSettingsOf(loadConfig({}))).toBeUndefined();
    });

    it('refuses to start without either secret, naming each, and never prints them', () => {
      expect(() => loadConfig({ PAYMENT_PROVIDER: 'stripe' })).toThrow(/STRIPE_SECRET_KEY is required when PAYMENT_PROVIDER=stripe[\s\S]*STRIPE_WEBHOOK_SECRET is required when PAYMENT_PROVIDER=stripe/);
      expect(() => loadConfig({ ...stripe, STRIPE_SECRET_KEY: 'pk_test_0123456789abcdef' })).toThrow(/STRIPE_SECRET_KEY=\(hidden\): STRIPE_SECRET_KEY must be a Stripe secret key/);
      expect(() => loadConfig({ ...stripe, STRIPE_WEBHOOK_SECRET: 'secret' })).toThrow(/STRIPE_WEBHOOK_SECRET=\(hidden\)/);
    });

    it("is accepted in production against Stripe's API, and refused against any other host, over https or not", () => {
      expect(loadConfig({ ...production, ...stripe }).PAYMENT_PROVIDER).toBe('stripe');
      expect(loadConfig({ ...production, ...stripe, STRIPE_API_URL: 'https://api.stripe.com/' }).PAYMENT_PROVIDER).toBe('stripe');
      expect(() => loadConfig({ ...production, ...stripe, STRIPE_API_URL: 'http://127.0.0.1:12111' })).toThrow(/STRIPE_API_URL="http:\/\/127.0.0.1:12111": production talks to Stripe's API only \(https:\/\/api.stripe.com\)/);
      expect(() => loadConfig({ ...production, ...stripe, STRIPE_API_URL: 'https://api.stripe.com.example.net' })).toThrow(/STRIPE_API_URL="https:\/\/api.stripe.com.example.net": production talks to Stripe's API only/);
      expect(() => loadConfig({ ...production, ...stripe, STRIPE_API_URL: 'http://api.stripe.com' })).toThrow(/production talks to Stripe's API only/);
      expect(() => loadConfig({ ...production, PAYMENT_PROVIDER: 'mock' })).toThrow(/PAYMENT_PROVIDER=mock/);
    });
  });
});
