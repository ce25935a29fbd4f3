import { Client } from 'pg';
import { StartupError } from './startup.error.js';

const CONNECT_TIMEOUT_MS = 5_000;

/**
 * Connects once to `url` and says, naming `variable`, why that failed: the host is unknown, nothing
 * listens, no answer in time, the credentials or the database name are wrong. The password is never
 * part of the message. A start that cannot reach its database stops here, within seconds.
 */
export async function checkDatabaseReachable(url: string, variable: string): Promise<void> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    throw new StartupError(variable, `cannot connect to ${whereOf(url)}: ${reasonOf(error)}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function whereOf(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port === '' ? '5432' : parsed.port} database ${parsed.pathname.slice(1) || '(default)'} as ${parsed.username === '' ? '(default user)' : decodeURIComponent(parsed.username)}`;
}

function reasonOf(error: unknown): string {
  const { code, message } = typeof error === 'object' && error !== null ? (error as { code?: unknown; message?: unknown }) : {};
  switch (code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name does not resolve (ENOTFOUND)';
    case 'ECONNREFUSED':
      return 'nothing listens there (ECONNREFUSED)';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `the host is unreachable (${code})`;
    case '28P01':
    case '28000':
      return 'the server refused the user or password';
    case '3D000':
      return 'the database does not exist';
    default:
      return typeof message === 'string' && /timeout/i.test(message) ? `no answer within ${CONNECT_TIMEOUT_MS / 1000} s` : `${typeof code === 'string' ? code : 'error'}: ${typeof message === 'string' ? message : 'unknown'}`;
  }
}
