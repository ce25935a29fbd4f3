import { ConfigError, loadConfig } from './app.config.js';

describe('configuration', () => {
  it('uses the embedded defaults when nothing is set', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ PORT: 3000, DATA_DIR: '.data', PROJECTIONS_ENABLED: true, READ_YOUR_WRITES_TIMEOUT_MS: 5000, LOG_LEVEL: 'info' });
    expect(config.DATABASE_URL).toBeUndefined();
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
  ])('refuses %s=%s and names the variable', (key, value) => {
    expect(() => loadConfig({ [key]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [key]: value })).toThrow(new RegExp(`${key}=`));
  });
});
