import { CodedError } from '@app/ledger';

/** The one expected failure of the database itself: it cannot be reached right now. */
export const DATABASE_ERROR_CODES = ['DATABASE_UNAVAILABLE'] as const;

export type DatabaseErrorCode = (typeof DATABASE_ERROR_CODES)[number];

/** The database refused, dropped or did not answer a connection: worth retrying shortly, never the caller's fault. */
export class DatabaseUnavailableError extends CodedError<DatabaseErrorCode> {
  override readonly name = 'DatabaseUnavailableError';

  constructor(options?: ErrorOptions) {
    super('DATABASE_UNAVAILABLE', 'the database cannot be reached right now; retry shortly', {}, options);
  }
}

/** Socket errors of a connection that could not be made or was lost. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);
/**
 * SQLSTATEs of a server going away or refusing sessions (class 08 is matched by prefix): 57P01
 * admin_shutdown (a fast stop), 57P02 crash_shutdown, 57P03 cannot_connect_now (starting up or
 * shutting down), 57P04 database_dropped, 57P05 idle_session_timeout, 53300 too_many_connections;
 * and the refusals of a session by its credentials or database, which only a connection attempt
 * meets (a password rotated, an entry of pg_hba.conf, a database renamed): 28000
 * invalid_authorization_specification, 28P01 invalid_password, 3D000 invalid_catalog_name. The
 * caller can do nothing about any of them but retry; the operator learns which from the log.
 */
const SERVER_CODES = new Set(['57P01', '57P02', '57P03', '57P04', '57P05', '53300', '28000', '28P01', '3D000']);
/**
 * 55000 (object_not_in_prerequisite_state) is many things; a database whose connections are not
 * allowed (ALTER DATABASE ... ALLOW_CONNECTIONS false, or a template) is one, known by its message.
 */
const NOT_ACCEPTING_CONNECTIONS = /^database ".*" is not currently accepting connections$/;
/**
 * What pg and pg-pool say, without a code, when a connection cannot be had, was lost, or stopped
 * answering (`Query read timeout`: a query's `query_timeout` passed with no answer from the server).
 */
const DRIVER_MESSAGES = [
  'Connection terminated',
  'Query read timeout',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
];
const CAUSES_FOLLOWED_MAX = 5;

/**
 * The error as a DatabaseUnavailableError when it (or what it wraps) is a connection failure: the
 * database stopped, restarting, unreachable, or out of connections. Undefined for anything else,
 * which stays what it is (a bug is a 500, not a 503).
 */
export function databaseUnavailableErrorOf(error: unknown): DatabaseUnavailableError | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < CAUSES_FOLLOWED_MAX && isErrorLike(current); depth += 1) {
    // Already judged (the EventStoreDB adapter's reads): itself.
    if (current instanceof DatabaseUnavailableError) return current;
    if (isConnectionFailure(current)) return new DatabaseUnavailableError({ cause: error });
    current = current.cause;
  }
  return undefined;
}

/** The members read, checked by shape: an error made by Node's own code may come from another realm (a VM context) and fail `instanceof Error`. */
type ErrorLike = { readonly code?: unknown; readonly message?: unknown; readonly cause?: unknown; readonly errors?: unknown };

function isErrorLike(value: unknown): value is ErrorLike {
  return typeof value === 'object' && value !== null;
}

function isConnectionFailure(error: ErrorLike): boolean {
  const code = typeof error.code === 'string' ? error.code : undefined;
  if (code !== undefined && (NETWORK_CODES.has(code) || SERVER_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code))) return true;
  if (code === '55000' && typeof error.message === 'string' && NOT_ACCEPTING_CONNECTIONS.test(error.message)) return true;
  // Node reports a refused connection to a name with several addresses as an AggregateError.
  if (Array.isArray(error.errors) && error.errors.some((each) => isErrorLike(each) && isConnectionFailure(each))) return true;
  const message = typeof error.message === 'string' ? error.message : '';
  return DRIVER_MESSAGES.some((start) => message.startsWith(start));
}
