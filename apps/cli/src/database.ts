import { connect as connectTcp } from 'node:net';
import path from 'node:path';
import {
  checkDatabaseReachable,
  EMBEDDED_SERVICE_DATABASE,
  embeddedPostgresUrl,
  isAuthenticationFailure,
  pendingMigrations,
  readEmbeddedServicePassword,
  runningPostmaster,
  startEmbeddedPostgres,
} from '@app/database';
import { PostgresEventStore } from '@app/event-store';
import { InlineProjections, PROJECTIONS } from '@app/projections';
import pg, { type Pool } from 'pg';

export type Connection = {
  readonly url: string;
  readonly pool: Pool;
  readonly store: PostgresEventStore;
  close(): Promise<void>;
};

/**
 * The database the service uses: DATABASE_URL, else the embedded PostgreSQL under DATA_DIR. When the
 * service is already running on it (its port answers), the CLI connects to that server with the
 * service role's password kept under DATA_DIR; otherwise it starts the embedded server for the
 * duration of the command. The events must be in PostgreSQL. Unless `schema` is 'any' (`migrate`),
 * a database without every migration of this version is refused before any command's work, naming
 * what to run: the commands' statements would otherwise fail on a missing table or function with
 * PostgreSQL's own words (a fresh DATA_DIR that no service has started, or a pull not yet applied).
 */
export async function connect({ schema = 'current' }: { readonly schema?: 'current' | 'any' } = {}): Promise<Connection> {
  if (process.env.EVENT_STORE !== undefined && process.env.EVENT_STORE !== 'postgres') {
    throw new Error('the admin CLI reads the events from PostgreSQL; EVENT_STORE=eventstoredb is not supported by it');
  }
  let url = process.env.DATABASE_URL;
  let stopServer: () => Promise<void> = () => Promise.resolve();
  if (url !== undefined && url !== '') {
    // As the service starts: why the database cannot be reached, named, within seconds (not an empty message or a hang).
    await checkDatabaseReachable(url, 'DATABASE_URL');
  } else {
    const port = Number(process.env.EMBEDDED_POSTGRES_PORT ?? 54329);
    if (!Number.isInteger(port) || port < 1024 || port > 65535) throw new Error(`EMBEDDED_POSTGRES_PORT must be an integer from 1024 to 65535, not ${process.env.EMBEDDED_POSTGRES_PORT}`);
    const dataDir = path.resolve(process.env.DATA_DIR ?? '.data');
    if (await listening(port)) {
      url = await joinRunningServer(dataDir, port);
    } else {
      const server = await startEmbeddedPostgres({ dataDir: path.join(dataDir, 'postgres'), secretsDirectory: path.join(dataDir, 'secrets'), port, database: EMBEDDED_SERVICE_DATABASE, persistent: true });
      url = server.url;
      stopServer = () => server.stop();
    }
  }
  let closing = false;
  const pool = new pg.Pool({ connectionString: url, max: 12 });
  // pool.end() resolves before its sockets are closed; the server stopping right after is expected then.
  pool.on('error', (error) => {
    if (!closing) process.stderr.write(`database connection lost: ${error.message}\n`);
  });
  // With the service's inline projections: every PostgreSQL writer of a stream must apply them, or the
  // runner would apply its events after later inline ones (docs/adr/0002-inline-projections.md).
  const store = new PostgresEventStore(pool, { connectionString: url, appendHook: new InlineProjections(PROJECTIONS) });
  const connection: Connection = {
    url,
    pool,
    store,
    async close() {
      closing = true;
      await store.close();
      await pool.end();
      await stopServer();
    },
  };
  if (schema === 'any') return connection;
  try {
    await checkSchemaCurrent(pool);
  } catch (error) {
    await connection.close();
    throw error;
  }
  return connection;
}

const UNDEFINED_TABLE = '42P01';
const MIGRATE_HINT = 'run `npm run cli -- migrate` (the service applies them too when it starts)';

/** Refuses a database that lacks migrations this version ships (none at all: no `pgmigrations` table). */
async function checkSchemaCurrent(pool: Pool): Promise<void> {
  let pending: readonly string[];
  try {
    pending = await pendingMigrations(pool);
  } catch (error) {
    if ((error as { readonly code?: unknown }).code !== UNDEFINED_TABLE) throw error;
    throw new Error(`the database has no Token Ledger tables yet: ${MIGRATE_HINT}`, { cause: error });
  }
  if (pending.length === 0) return;
  const count = pending.length === 1 ? '1 migration' : `${pending.length} migrations`;
  throw new Error(`the database lacks ${count} of this version (the first: ${pending[0]}): ${MIGRATE_HINT}`);
}

/**
 * The service database on the server already listening on `port`, when that server is DATA_DIR's
 * own: its postmaster.pid names this port, and it accepts the password kept under DATA_DIR. A
 * server of another data directory is refused in one line, before anything is read from it.
 */
async function joinRunningServer(dataDir: string, port: number): Promise<string> {
  const anotherDataDirectory = `EMBEDDED_POSTGRES_PORT=${port}: the PostgreSQL server on this port belongs to another data directory, not DATA_DIR=${dataDir}; set the DATA_DIR and EMBEDDED_POSTGRES_PORT of the service you mean`;
  const password = await readEmbeddedServicePassword(path.join(dataDir, 'secrets'));
  if (runningPostmaster(path.join(dataDir, 'postgres'))?.port !== port || password === undefined) throw new Error(anotherDataDirectory);
  const url = embeddedPostgresUrl(port, EMBEDDED_SERVICE_DATABASE, password);
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    throw isAuthenticationFailure(error) ? new Error(`${anotherDataDirectory} (it refuses this DATA_DIR's password)`) : error;
  } finally {
    await client.end().catch(() => undefined);
  }
  return url;
}

/** Whether anything accepts TCP connections on 127.0.0.1:`port`. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connectTcp({ host: '127.0.0.1', port, timeout: 2_000 });
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}
