import { StartupError } from '@app/database';
import { logOutputOf } from './service-logger.js';

describe('log output', () => {
  it('is pretty only on a development terminal with pino-pretty installed, when LOG_FORMAT=auto', () => {
    expect(logOutputOf('auto', { nodeEnv: 'development', terminal: true, prettyInstalled: true })).toBe('pretty');
    expect(logOutputOf('auto', { nodeEnv: 'development', terminal: false, prettyInstalled: true })).toBe('json');
    expect(logOutputOf('auto', { nodeEnv: 'production', terminal: true, prettyInstalled: true })).toBe('json');
    // Production installs omit development dependencies: auto never needs pino-pretty.
    expect(logOutputOf('auto', { nodeEnv: 'development', terminal: true, prettyInstalled: false })).toBe('json');
  });

  it('follows LOG_FORMAT=json or pretty, and refuses pretty without pino-pretty, naming the variable', () => {
    expect(logOutputOf('json', { nodeEnv: 'development', terminal: true, prettyInstalled: true })).toBe('json');
    expect(logOutputOf('pretty', { nodeEnv: 'production', terminal: false, prettyInstalled: true })).toBe('pretty');
    expect(() => logOutputOf('pretty', { nodeEnv: 'production', terminal: false, prettyInstalled: false })).toThrow(StartupError);
    expect(() => logOutputOf('pretty', { nodeEnv: 'production', terminal: false, prettyInstalled: false })).toThrow(/^LOG_FORMAT: pretty needs pino-pretty/);
  });
});
