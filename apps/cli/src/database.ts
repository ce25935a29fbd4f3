import path from 'node:path';
import { EMBEDDED_SERVICE_DATABASE, embeddedPostgresUrl, startEmbeddedPostgres } from '@app/database';
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
 * service is already running on it (its port answers), the CLI connects to that server; otherwise it
 * starts the embedded server for the duration of the command. The events must be in PostgreSQL.
 */
export async function connect(): Promise<Connection> {
  if (process.env.EVENT_STORE !== undefined && process.env.EVENT_STORE !== 'postgres') {
    throw new Error('the admin CLI reads the events from PostgreSQL; EVENT_STORE=eventstoredb is not supported by it');
  }
  let url = process.env.DATABASE_URL;
  let stopServer: () => Promise<void> = () => Promise.resolve();
  if (url === undefined || url === '') {
    const port = Number(process.env.EMBEDDED_POSTGRES_PORT ?? 54329);
    if (!Number.isInteger(port) || port < 1024 || port > 65535) throw new Error(`EMBEDDED_POSTGRES_PORT must be an integer from 1024 to 65535, not ${process.env.EMBEDDED_POSTGRES_PORT}`);
    url = embeddedPostgresUrl(port, EMBEDDED_SERVICE_DATABASE);
    if (!(await answers(url))) {
      const server = await startEmbeddedPostgres({ dataDir: path.resolve(process.env.DATA_DIR ?? '.data', 'postgres'), port, database: EMBEDDED_SERVICE_DATABASE, persistent: true });
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
  return {
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
}

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.end();
    return true;
  } catch {
    return false;
  }
}
