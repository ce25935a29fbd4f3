import { ConfigError, loadConfig } from './app.config.js';

describe('configuration', () => {
  it('uses the embedded defaults when nothing is set', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ PORT: 3000, DATA_DIR: '.data', PROJECTIONS_ENABLED: true, READ_YOUR_WRITES_TIMEOUT_MS: 5000, LOG_LEVEL: 'info' });
    expect(config.DATABASE_URL).toBeUndefined();
    expect(config.EVENT_STORE).toBe('postgres');
    expect(config.EVENTSTORE_URL).toBeUndefined();
  });

  it('selects EventStoreDB for the events with its connection string', () => {
    const url = 'esdb://127.0.0.1:2111,127.0.0.1:2112,127.0.0.1:2113?tls=false&nodePreference=leader';
    expect(loadConfig({ EVENT_STORE: 'eventstoredb', EVENTSTORE_URL: url })).toMatchObject({ EVENT_STORE: 'eventstoredb', EVENTSTORE_URL: url });
    expect(loadConfig({ EVENT_STORE: 'eventstoredb', EVENTSTORE_URL: 'esdb+discover://cluster.example:2113' }).EVENTSTORE_URL).toBe('esdb+discover://cluster.example:2113');
  });

  it.each([{}, { EVENTSTORE_URL: '' }])('refuses EVENT_STORE=eventstoredb without EVENTSTORE_URL (%j) and says it is required', (environment) => {
    const load = () => loadConfig({ EVENT_STORE: 'eventstoredb', ...environment });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/EVENTSTORE_URL=.*EVENTSTORE_URL is required when EVENT_STORE=eventstoredb/);
  });

  it('limits input by default: purchases, open payments, request rates', () => {
    expect(loadConfig({})).toMatchObject({
      PURCHASE_TOKENS_MAX: 1_000_000,
      PENDING_PAYMENTS_MAX: 10,
      RATE_LIMIT_ENABLED: true,
      RATE_LIMIT_WINDOW_SECONDS: 60,
      RATE_LIMIT_PER_IP_MAX: 6_000,
      RATE_LIMIT_PER_CREDENTIAL_MAX: 3_000,
    });
    expect(loadConfig({ PURCHASE_TOKENS_MAX: '500', PENDING_PAYMENTS_MAX: '3', RATE_LIMIT_ENABLED: 'false' })).toMatchObject({ PURCHASE_TOKENS_MAX: 500, PENDING_PAYMENTS_MAX: 3, RATE_LIMIT_ENABLED: false });
  });

  it('reads numbers and booleans from their text', () => {
    expect(loadConfig({ PORT: '8080', PROJECTIONS_ENABLED: 'false', DATABASE_URL: 'postgres://x@h/db' })).toMatchObject({
      PORT: 8080,
      PROJECTIONS_ENABLED: false,
      DATABASE_URL: 'postgres://x@h/db',
    });
  });

  it.each([
    ['PORT', 'eighty'],
    ['PORT', '70000'],
    ['PROJECTIONS_ENABLED', 'yes'],
    ['LOG_LEVEL', 'loud'],
    ['DATABASE_POOL_SIZE', '1'],
    ['EVENT_STORE', 'mongodb'],
    ['EVENTSTORE_URL', 'http://127.0.0.1:2113'],
    ['EVENTSTORE_URL', 'esdb://'],
    ['PURCHASE_TOKENS_MAX', '0'],
    ['PURCHASE_TOKENS_MAX', '9007199254740992'],
    ['PENDING_PAYMENTS_MAX', '0'],
    ['RATE_LIMIT_ENABLED', 'off'],
    ['RATE_LIMIT_WINDOW_SECONDS', '0'],
    ['RATE_LIMIT_PER_IP_MAX', 'many'],
    ['RATE_LIMIT_PER_CREDENTIAL_MAX', '0'],
  ])('refuses %s=%s and names the variable', (key, value) => {
    expect(() => loadConfig({ [key]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [key]: value })).toThrow(new RegExp(`${key}=`));
  });

  it('reads hold times to live as durations, and refuses a default above the maximum, a part of a second, or beyond 30 days', () => {
    expect(loadConfig({})).toMatchObject({ HOLD_TTL_DEFAULT: 900_000, HOLD_TTL_MAX: 86_400_000, CREDIT_EXPIRY_JOB_ENABLED: true, CREDIT_EXPIRY_JOB_INTERVAL_MS: 10_000 });
    expect(loadConfig({ HOLD_TTL_DEFAULT: '5m', HOLD_TTL_MAX: '1h' })).toMatchObject({ HOLD_TTL_DEFAULT: 300_000, HOLD_TTL_MAX: 3_600_000 });
    expect(() => loadConfig({ HOLD_TTL_DEFAULT: '2h', HOLD_TTL_MAX: '1h' })).toThrow(/HOLD_TTL_DEFAULT="2h", HOLD_TTL_MAX="1h": both whole seconds, the default at most the maximum/);
    // A reconciliation look-back shorter than two intervals leaves payments that change between runs never compared.
    expect(() => loadConfig({ PAYMENT_RECONCILIATION_LOOKBACK: '30m', PAYMENT_RECONCILIATION_INTERVAL_MS: '3600000' })).toThrow(
      /PAYMENT_RECONCILIATION_LOOKBACK="30m", PAYMENT_RECONCILIATION_INTERVAL_MS="3600000": a look-back of 1800000 ms must be at least twice the interval of 3600000 ms/,
    );
    expect(() => loadConfig({ PAYMENT_RECONCILIATION_LOOKBACK: '9m' })).toThrow(/PAYMENT_RECONCILIATION_INTERVAL_MS=\(unset\): a look-back of 540000 ms must be at least twice the interval of 300000 ms/);
    expect(loadConfig({ PAYMENT_RECONCILIATION_LOOKBACK: '10m' }).PAYMENT_RECONCILIATION_LOOKBACK).toBe(600_000);
    expect(() => loadConfig({ HOLD_TTL_DEFAULT: '1500ms' })).toThrow(/HOLD_TTL_DEFAULT="1500ms", HOLD_TTL_MAX=\(unset\): both whole seconds/);
    expect(() => loadConfig({ HOLD_TTL_DEFAULT: '1500ms' })).toThrow(ConfigError);
    expect(() => loadConfig({ HOLD_TTL_MAX: '721h' })).toThrow(/HOLD_TTL_MAX/);
  });

  it('names a value that is not a duration as it was given, once', () => {
    const problems = (() => {
      try {
        loadConfig({ HOLD_TTL_DEFAULT: '2d' });
      } catch (error) {
        return (error as ConfigError).problems;
      }
      return [];
    })();
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^HOLD_TTL_DEFAULT="2d": .*HOLD_TTL_DEFAULT must be a duration such as 15m, 90s or a number of milliseconds$/);
  });

  it('reads a package lot priority and lifetime, and refuses them out of range', () => {
    const packages = (extra: object) => JSON.stringify([{ id: 'p', tokens: 10, price: 100, currency: 'USD', ...extra }]);
    expect(loadConfig({ TOKEN_PACKAGES: packages({ expiresInDays: 30, priority: 5 }) }).TOKEN_PACKAGES[0]).toMatchObject({ expiresInDays: 30, priority: 5 });
    expect(() => loadConfig({ TOKEN_PACKAGES: packages({ expiresInDays: 0 }) })).toThrow(/expiresInDays/);
    expect(() => loadConfig({ TOKEN_PACKAGES: packages({ priority: -1 }) })).toThrow(/priority/);
  });

  it('serves metrics on loopback port 9464 by default, takes the readiness lag as a duration, and has CORS off', () => {
    expect(loadConfig({})).toMatchObject({ METRICS_ENABLED: true, METRICS_HOST: '127.0.0.1', METRICS_PORT: 9464, READY_MAX_PROJECTION_LAG: 60_000, CORS_ORIGINS: [], LOG_FORMAT: 'auto' });
    expect(loadConfig({ METRICS_PORT: '0', METRICS_HOST: '0.0.0.0', READY_MAX_PROJECTION_LAG: '2m', LOG_FORMAT: 'json' })).toMatchObject({
      METRICS_PORT: 0,
      METRICS_HOST: '0.0.0.0',
      READY_MAX_PROJECTION_LAG: 120_000,
      LOG_FORMAT: 'json',
    });
  });

  it('reads CORS_ORIGINS as a comma-separated list of origins', () => {
    expect(loadConfig({ CORS_ORIGINS: 'https://app.example.com, http://localhost:5173' }).CORS_ORIGINS).toEqual(['https://app.example.com', 'http://localhost:5173']);
  });

  it.each(['*', 'https://app.example.com/', 'app.example.com', 'https://app.example.com/path'])('refuses CORS_ORIGINS=%s, naming the variable and the form', (origins) => {
    expect(() => loadConfig({ CORS_ORIGINS: origins })).toThrow(/CORS_ORIGINS=.*CORS_ORIGINS must be origins such as https:\/\/app\.example\.com/);
  });

  it('bounds a stop by SHUTDOWN_TIMEOUT, 25 s unless set, a duration from 1 s to 10 minutes', () => {
    expect(loadConfig({}).SHUTDOWN_TIMEOUT).toBe(25_000);
    expect(loadConfig({ SHUTDOWN_TIMEOUT: '2m' }).SHUTDOWN_TIMEOUT).toBe(120_000);
    expect(() => loadConfig({ SHUTDOWN_TIMEOUT: '500ms' })).toThrow(/SHUTDOWN_TIMEOUT="500ms": .*must not be less than 1000/);
    expect(() => loadConfig({ SHUTDOWN_TIMEOUT: '11m' })).toThrow(/SHUTDOWN_TIMEOUT="11m": .*must not be greater than 600000/);
    expect(() => loadConfig({ SHUTDOWN_TIMEOUT: 'soon' })).toThrow(/SHUTDOWN_TIMEOUT="soon": .*SHUTDOWN_TIMEOUT must be a duration such as 25s, 1m or a number of milliseconds/);
  });

  it('refuses one port for two of its listeners on overlapping addresses, counting only those that listen: metrics when enabled, the embedded PostgreSQL without DATABASE_URL', () => {
    expect(() => loadConfig({ PORT: '9464' })).toThrow(/PORT and METRICS_PORT are both 9464 on overlapping addresses: the service listens on each of them, so they must differ/);
    expect(() => loadConfig({ PORT: '54329' })).toThrow(/PORT and EMBEDDED_POSTGRES_PORT are both 54329/);
    expect(() => loadConfig({ METRICS_PORT: '4000', EMBEDDED_POSTGRES_PORT: '4000' })).toThrow(/METRICS_PORT and EMBEDDED_POSTGRES_PORT are both 4000/);
    // A wildcard overlaps every address; loopback names overlap each other.
    expect(() => loadConfig({ PORT: '9464', HOST: '0.0.0.0', METRICS_HOST: '10.0.0.5' })).toThrow(/PORT and METRICS_PORT are both 9464/);
    expect(() => loadConfig({ PORT: '54329', HOST: 'localhost' })).toThrow(/PORT and EMBEDDED_POSTGRES_PORT are both 54329/);
    // Different addresses, or a listener that does not listen: no clash.
    expect(loadConfig({ PORT: '9464', HOST: '10.0.0.5' }).PORT).toBe(9464);
    expect(loadConfig({ PORT: '9464', METRICS_ENABLED: 'false' }).PORT).toBe(9464);
    expect(loadConfig({ PORT: '54329', DATABASE_URL: 'postgres://localhost/ledger' }).PORT).toBe(54329);
    expect(loadConfig({ PORT: '0', METRICS_PORT: '0' })).toMatchObject({ PORT: 0, METRICS_PORT: 0 });
    // A refused setting is named once, not also as a clash.
    expect(() => loadConfig({ PORT: '9464', METRICS_ENABLED: 'maybe' })).toThrow(/^(?![\s\S]*overlapping)[\s\S]*METRICS_ENABLED="maybe"/);
  });

  it('refuses a readiness lag below a second, a metrics port out of range and an unknown log format', () => {
    const load = () => loadConfig({ READY_MAX_PROJECTION_LAG: '10ms', METRICS_PORT: '70000', LOG_FORMAT: 'xml' });
    expect(load).toThrow(/READY_MAX_PROJECTION_LAG="10ms": .*must not be less than 1000/);
    expect(load).toThrow(/METRICS_PORT="70000": .*must not be greater than 65535/);
    expect(load).toThrow(/LOG_FORMAT="xml": .*must be one of the following values: auto, json, pretty/);
  });
});
