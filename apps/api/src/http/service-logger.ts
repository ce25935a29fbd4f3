import { createRequire } from 'node:module';
import { StartupError } from '@app/database';
import { pino, type Logger } from 'pino';
import type { AppConfig, LogFormat } from '../config/app.config.js';

/** What the service writes its lines as; `pretty` needs pino-pretty, a development dependency. */
export function logOutputOf(format: LogFormat, { nodeEnv, terminal, prettyInstalled }: { nodeEnv: AppConfig['NODE_ENV']; terminal: boolean; prettyInstalled: boolean }): 'json' | 'pretty' {
  switch (format) {
    case 'json':
      return 'json';
    case 'pretty':
      if (!prettyInstalled) throw new StartupError('LOG_FORMAT', 'pretty needs pino-pretty, a development dependency that is not installed here (npm ci --omit=dev); use json or auto');
      return 'pretty';
    case 'auto':
      return nodeEnv === 'development' && terminal && prettyInstalled ? 'pretty' : 'json';
  }
}

function prettyInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

/**
 * The service's logger: JSON lines (or pino-pretty's text on a developer's terminal, LOG_FORMAT). The
 * lines of a request name its `requestId` themselves (the `request completed` line, the access
 * control's refusals, the 500s and 503s of ProblemDetailsFilter). Not by an AsyncLocalStorage mixin:
 * on Node 20 one installs promise hooks for every promise of the process, which cost 15 to 20% of the
 * service's CPU per request (ADR 0027).
 */
export function createServiceLogger(config: AppConfig): Logger {
  const output = logOutputOf(config.LOG_FORMAT, { nodeEnv: config.NODE_ENV, terminal: process.stdout.isTTY, prettyInstalled: prettyInstalled() });
  return pino({
    level: config.LOG_LEVEL,
    base: { service: 'token-ledger' },
    ...(output === 'pretty' ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } } } : {}),
  });
}
